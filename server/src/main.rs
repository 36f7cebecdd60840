use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    keygate_server::serve::return_freed_memory_to_the_system();
    keygate_server::logging::init();
    let cli = keygate_server::cli::Cli::parse();
    match keygate_server::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
