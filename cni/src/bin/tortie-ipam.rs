//! `tortie-ipam`: the CNI IPAM plugin (addresses by handle from the datastore).

use tortie_cni::plugin_input::Input;

fn main() {
    let code = tortie_cni::main_entry(|input| match input {
        Input::Version => Ok(Some(tortie_cni::version::version_info())),
        Input::Invoke(inv) => tortie_cni::ipam_plugin::run(&inv),
    });
    std::process::exit(code);
}
