use clap::Parser;

// mimalloc instead of glibc's malloc: console pages allocate thousands of
// small strings per render, and glibc's arenas spent about a fifth of the
// CPU of `/applications` in malloc and free (perf, 2 cores). It also hands
// argon2's 19 MiB blocks back to the system when they are freed.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
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
