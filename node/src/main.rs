//! tortie-node: the per-node agent (being built; see issue 9).

fn main() {
    eprintln!("tortie-node: not built yet (issue 9)");
    std::process::exit(1);
}
