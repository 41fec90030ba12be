//! `tortie`: the CNI plugin that wires a pod into the host.

use tortie_cni::plugin_input::Input;

fn main() {
    let code = tortie_cni::main_entry(|input| match input {
        Input::Version => Ok(Some(tortie_cni::version::version_info())),
        Input::Invoke(inv) => inv.run(),
    });
    std::process::exit(code);
}
