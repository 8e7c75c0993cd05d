//! The evaluation's output: one JSON file per experiment and a `report.md`
//! that embeds the plots, each stamped with the machine, the date, the
//! commit and the settings.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::{Value, json};

/// Where and on what the evaluation ran.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// The CPU model.
    pub cpu: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
    /// The kernel release.
    pub kernel: String,
    /// When the run started (UTC, ISO 8601).
    pub date: String,
    /// The checkout's commit (`unknown` outside git).
    pub commit: String,
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

impl Machine {
    /// This machine, now.
    pub fn now(workspace: &Path) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split(':').nth(1)))
            .map_or_else(|| "unknown".into(), |m| m.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let workspace = workspace.display().to_string();
        Self {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: memory_kib * 1024,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
            date: command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_else(|| "unknown".into()),
            commit: command_line("git", &["-C", &workspace, "rev-parse", "--short", "HEAD"])
                .unwrap_or_else(|| "unknown".into()),
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        format!(
            "{} × {}, {:.0} GiB, Linux {}, {}, commit {}",
            self.cpus,
            self.cpu,
            self.memory_bytes as f64 / f64::from(1u32 << 30),
            self.kernel,
            self.date,
            self.commit
        )
    }
}

/// One experiment's part of the report.
pub struct Section {
    /// Its heading.
    pub title: String,
    /// What it measures, how, and what to read in it (Markdown).
    pub text: String,
    /// Its settings, shown under the heading and kept in its JSON.
    pub settings: Value,
    /// Markdown tables.
    pub tables: Vec<String>,
    /// SVG files (names in the output directory), embedded in order.
    pub plots: Vec<String>,
    /// Everything measured, for its JSON file.
    pub data: Value,
}

/// The report being written into `dir`.
pub struct Report {
    dir: PathBuf,
    machine: Machine,
    mode: String,
    body: String,
}

impl Report {
    /// A report into `dir` (created), for a run in `mode`.
    pub fn new(dir: &Path, machine: Machine, mode: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self { dir: dir.to_owned(), machine, mode: mode.to_owned(), body: String::new() })
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a section and writes its JSON file `<file>.json`.
    pub fn add(&mut self, file: &str, section: Section) -> anyhow::Result<()> {
        let json = json!({
            "experiment": section.title,
            "machine": self.machine,
            "mode": self.mode,
            "settings": section.settings,
            "data": section.data,
        });
        let path = self.dir.join(format!("{file}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
        let body = &mut self.body;
        writeln!(body, "## {}\n", section.title)?;
        writeln!(body, "Settings: `{}` · data: [`{file}.json`]({file}.json)\n", section.settings)?;
        writeln!(body, "{}\n", section.text.trim())?;
        for table in &section.tables {
            writeln!(body, "{}\n", table.trim())?;
        }
        for plot in &section.plots {
            writeln!(body, "![{plot}]({plot})\n")?;
        }
        Ok(())
    }

    /// Writes `report.md`; answers its path.
    pub fn finish(self) -> anyhow::Result<PathBuf> {
        let mut text = String::new();
        writeln!(text, "# burst evaluation ({} mode)\n", self.mode)?;
        writeln!(text, "Machine: {}.\n", self.machine.describe())?;
        writeln!(
            text,
            "Every point is measured several times in this run; tables give the median and the \
             min–max. Comparisons are taken in the same run.\n"
        )?;
        text.push_str(&self.body);
        let path = self.dir.join("report.md");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// A Markdown table of `header` and `rows`.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut text = format!("| {} |\n|{}\n", header.join(" | "), " ---: |".repeat(header.len()));
    for row in rows {
        text.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_has_its_sections_json_and_machine() {
        let dir = std::env::temp_dir().join(format!("burst-bench-report-{}", std::process::id()));
        let machine = Machine::now(Path::new("."));
        let mut report = Report::new(&dir, machine, "quick").expect("dir");
        let section = Section {
            title: "Start-up".into(),
            text: "What it shows.".into(),
            settings: json!({"repeats": 3}),
            tables: vec![table(&["G", "ms"], &[vec!["1".into(), "2.5".into()]])],
            plots: vec!["startup.svg".into()],
            data: json!({"points": [1, 2]}),
        };
        report.add("startup", section).expect("adds");
        let path = report.finish().expect("writes");
        let text = std::fs::read_to_string(path).expect("report");
        assert!(text.starts_with("# burst evaluation (quick mode)\n\nMachine: "), "{text}");
        for part in ["## Start-up", "`{\"repeats\":3}`", "| G | ms |\n| ---: | ---: |\n| 1 | 2.5 |", "![startup.svg]"] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("startup.json")).expect("json")).expect("valid");
        assert_eq!((&json["mode"], &json["data"]["points"]), (&json!("quick"), &json!([1, 2])));
        assert!(json["machine"]["cpus"].as_u64().is_some_and(|n| n >= 1));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
