//! Lists the catalog: every check id with its title and parameters, as a tool that builds scenarios
//! would read it. Needs no cluster.
//!
//! ```text
//! cargo run -p netcheck --example list_checks
//! ```

fn main() {
    for check in netcheck::catalog::checks() {
        let params: Vec<String> = check.params.iter().map(|p| format!("{}={}", p.name, p.default)).collect();
        println!("{:<30} {} [{}]", check.id, check.title, params.join(", "));
    }
}
