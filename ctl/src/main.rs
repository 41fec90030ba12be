//! tortiectl: the calicoctl-style command line (being built; see issue 3).

fn main() {
    eprintln!("tortiectl: not built yet (issue 3)");
    std::process::exit(2);
}
