#[tokio::main]
async fn main() {
    std::process::exit(bkcache::cli::main().await);
}
