//! Runs every `.slt` file under `sql-tests/suites` at parallelism 1 and 4.
//!
//! ```text
//! cargo test -p weir-sql-tests --test slt                 # all suites
//! cargo test -p weir-sql-tests --test slt -- functions    # files whose path contains "functions"
//! cargo test -p weir-sql-tests --test slt -- --complete   # rewrite expected output from Weir's results
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sqllogictest::{Runner, default_column_validator, default_normalizer, default_validator};
use weir_sql_tests::WeirDb;

const PARALLELISMS: [usize; 2] = [1, 4];

fn slt_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            slt_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "slt") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let complete = args.iter().any(|a| a == "--complete");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Suites refer to their data relative to the sql-tests directory.
    if let Err(e) = std::env::set_current_dir(root) {
        eprintln!("cannot enter {}: {e}", root.display());
        return ExitCode::FAILURE;
    }
    let mut files = Vec::new();
    if let Err(e) = slt_files(Path::new("suites"), &mut files) {
        eprintln!("cannot list the suites: {e}");
        return ExitCode::FAILURE;
    }
    files.sort();
    files.retain(|f| {
        filters.is_empty()
            || filters
                .iter()
                .any(|p| f.to_string_lossy().contains(p.as_str()))
    });

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in &files {
        let parallelisms: &[usize] = if complete {
            &PARALLELISMS[..1]
        } else {
            &PARALLELISMS
        };
        for &parallelism in parallelisms {
            let mut runner = Runner::new(move || async move { WeirDb::new(parallelism).await });
            runner.add_label(&format!("parallelism-{parallelism}"));
            let result = runtime.block_on(async {
                if complete {
                    runner
                        .update_test_file(
                            file,
                            " ",
                            default_validator,
                            default_normalizer,
                            default_column_validator,
                        )
                        .await
                        .map_err(|e| e.to_string())
                } else {
                    runner
                        .run_file_async(file)
                        .await
                        .map_err(|e| e.display(true).to_string())
                }
            });
            match result {
                Ok(()) => {
                    passed += 1;
                    println!("ok      {} (parallelism {parallelism})", file.display());
                }
                Err(e) => {
                    failed += 1;
                    println!(
                        "FAILED  {} (parallelism {parallelism})\n{e}\n",
                        file.display()
                    );
                }
            }
        }
    }
    println!("\nslt: {passed} passed, {failed} failed");
    if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
