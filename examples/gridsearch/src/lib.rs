//! `gridsearch`: a hyperparameter grid search, ridge regression scored by
//! k-fold cross-validation, the grid shared among the workers.
//!
//! Input: `{"data": "/data/FILE.csv", "alphas": [...], "folds": 5}`, or
//! `{"generate": {"rows", "features", "noise", "seed"}, "alphas": [...],
//! "folds": 5}` for a seeded synthetic data set (`data.rs`). The CSV has a
//! header line and numeric columns, the last one the target.
//!
//! Each worker takes a contiguous share of the grid (`alphas`, cut like
//! the folds: sizes as even as possible, the first ones one larger), loads
//! the whole data set (a worker whose share is empty loads nothing),
//! computes `XᵀX` and `Xᵀy` once, and scores each of its alphas: ridge
//! regression without intercept solved exactly on each fold's training
//! part, mean squared error on the held-out fold, mean over the folds
//! (`ridge.rs`). The scores are gathered at worker 0, which adds to its
//! output `results` (every alpha with its `mean_mse`, in grid order) and
//! `best` (the least `mean_mse`, the first in grid order on ties). Every
//! worker returns the alphas it `evaluated` and its `timings`.
//!
//! `{"kernel": {"generate": …, "alphas": […], "folds": F}}` scores the
//! whole grid on one worker, and only that (`kernel.rs`).

mod data;
pub mod kernel;
mod ridge;

use std::time::Instant;

use burst_guest_sdk::{Context, Error, export_work};
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Generate};
use crate::ridge::{Moments, NotPositiveDefinite};

/// At most this many alphas in a grid.
const MAX_ALPHAS: usize = 100_000;

/// At most this many bytes of CSV: twice the text of [`data::MAX_CELLS`]
/// numbers of a few digits each.
const MAX_FILE_BYTES: u64 = 256 << 20;

/// What every worker is asked, as JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    data: Option<String>,
    generate: Option<Generate>,
    alphas: Vec<f64>,
    folds: usize,
}

/// One point of the grid and its score.
#[derive(Serialize, Clone, Copy)]
struct Score {
    alpha: f64,
    mean_mse: f64,
}

/// Microseconds of each phase of one worker.
#[derive(Serialize, Default)]
struct Timings {
    /// Reading and parsing the CSV, or generating the data set.
    load_us: u64,
    /// `XᵀX` and `Xᵀy` of every row.
    prepare_us: u64,
    /// Every fold's own moments and every alpha's solves and errors.
    evaluate_us: u64,
    /// The gather at worker 0.
    gather_us: u64,
}

/// What a worker returns.
#[derive(Serialize)]
struct Output {
    /// Worker 0 only: the whole grid, in grid order.
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<Vec<Score>>,
    /// Worker 0 only: the best point of the grid.
    #[serde(skip_serializing_if = "Option::is_none")]
    best: Option<Score>,
    /// Rows and features of the data set (0 when this worker loaded none).
    rows: usize,
    features: usize,
    /// This worker's share of the grid.
    evaluated: Vec<Score>,
    timings: Timings,
}

/// Where the data set comes from.
enum Source {
    File(String),
    Generate(Generate),
}

/// Checks the parts of the input that do not need the data.
fn check(input: Input) -> Result<(Source, Vec<f64>, usize), String> {
    let source = match (input.data, input.generate) {
        (Some(path), None) => Source::File(path),
        (None, Some(spec)) => Source::Generate(spec),
        _ => return Err("give exactly one of `data` (a CSV file) and `generate`".into()),
    };
    if input.alphas.is_empty() {
        return Err("alphas: empty; give at least one".into());
    }
    if input.alphas.len() > MAX_ALPHAS {
        return Err(format!("alphas: {} of them; at most {MAX_ALPHAS}", input.alphas.len()));
    }
    if let Some((index, alpha)) = input.alphas.iter().enumerate().find(|(_, a)| a.is_nan() || **a < 0.0) {
        return Err(format!("alphas[{index}]: {alpha}; every alpha must be ≥ 0"));
    }
    if input.folds < 2 {
        return Err(format!("folds: {}; need at least 2", input.folds));
    }
    Ok((source, input.alphas, input.folds))
}

/// Reads and parses the CSV file at `path`.
fn read_csv(path: &str) -> Result<Dataset, String> {
    let size = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?.len();
    if size > MAX_FILE_BYTES {
        return Err(format!("{path}: {size} bytes; at most {MAX_FILE_BYTES}"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    data::parse_csv(path, &text)
}

fn elapsed_us(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Loads the data set of `source`.
fn load(source: &Source) -> Result<Dataset, String> {
    match source {
        Source::File(path) => read_csv(path),
        Source::Generate(spec) => data::generate(spec),
    }
}

/// Scores `alphas`, which start at index `first` of the grid, timing the
/// phases.
fn score(
    data: &Dataset,
    alphas: &[f64],
    first: usize,
    folds: usize,
    timings: &mut Timings,
) -> Result<Vec<f64>, String> {
    if folds > data.rows() {
        return Err(format!("folds: {folds}; must be at most the number of rows ({})", data.rows()));
    }
    let started = Instant::now();
    let totals = Moments::of(data, 0..data.rows());
    timings.prepare_us = elapsed_us(started);
    let started = Instant::now();
    let scores =
        ridge::cross_validate(data, &totals, folds, alphas).map_err(|NotPositiveDefinite { alpha, fold }| {
            format!(
                "alphas[{}] = {}: XᵀX + αI of the training part of fold {} of {folds} is not positive definite",
                first + alpha,
                alphas[alpha],
                fold + 1
            )
        })?;
    timings.evaluate_us = elapsed_us(started);
    Ok(scores)
}

/// The first point with the least score.
fn best(results: &[Score]) -> Option<Score> {
    results.iter().copied().reduce(|best, s| if s.mean_mse < best.mean_mse { s } else { best })
}

fn work(input: Input, ctx: &Context) -> Result<Output, Error> {
    let (source, alphas, folds) = check(input).map_err(Error::work)?;
    let workers = ctx.burst_size() as usize;
    let share = ridge::even_range(alphas.len(), workers, ctx.worker_id() as usize);
    let mut timings = Timings::default();
    let (mut rows, mut features, mut scores) = (0, 0, Vec::new());
    if !share.is_empty() {
        let started = Instant::now();
        let data = load(&source).map_err(Error::work)?;
        timings.load_us = elapsed_us(started);
        scores = score(&data, &alphas[share.clone()], share.start, folds, &mut timings).map_err(Error::work)?;
        (rows, features) = (data.rows(), data.features);
    }
    let evaluated = alphas[share].iter().zip(&scores).map(|(&alpha, &mean_mse)| Score { alpha, mean_mse }).collect();
    let started = Instant::now();
    let gathered = ctx.gather(0, &scores)?;
    timings.gather_us = elapsed_us(started);
    let results = match gathered {
        Some(parts) => {
            // Contiguous shares in worker order are the grid in order.
            let all: Vec<f64> = parts.concat();
            if all.len() != alphas.len() {
                return Err(Error::work(format!("gathered {} scores for {} alphas", all.len(), alphas.len())));
            }
            Some(alphas.iter().zip(all).map(|(&alpha, mean_mse)| Score { alpha, mean_mse }).collect::<Vec<_>>())
        }
        None => None,
    };
    let best = results.as_deref().and_then(best);
    Ok(Output { results, best, rows, features, evaluated, timings })
}

export_work!(work, kernel = kernel::run);

#[cfg(test)]
mod tests {
    use super::*;

    fn input(alphas: Vec<f64>, folds: usize) -> Input {
        Input { data: Some("/data/d.csv".into()), generate: None, alphas, folds }
    }

    fn message(input: Input) -> String {
        check(input).err().expect("refused")
    }

    #[test]
    fn bad_grids_and_folds_are_refused_by_name() {
        assert_eq!(message(input(vec![], 5)), "alphas: empty; give at least one");
        assert_eq!(message(input(vec![1.0, -0.5], 5)), "alphas[1]: -0.5; every alpha must be ≥ 0");
        assert_eq!(message(input(vec![1.0], 1)), "folds: 1; need at least 2");
        let neither = Input { data: None, ..input(vec![1.0], 5) };
        assert_eq!(message(neither), "give exactly one of `data` (a CSV file) and `generate`");
        assert!(check(input(vec![0.0, 1.0], 2)).is_ok());
    }

    fn generated(rows: usize, features: usize) -> Dataset {
        data::generate(&Generate { rows, features, noise: 1.0, seed: 1 }).expect("valid")
    }

    #[test]
    fn too_many_folds_for_the_rows_is_refused() {
        let error = score(&generated(3, 2), &[1.0], 0, 4, &mut Timings::default());
        assert_eq!(error, Err("folds: 4; must be at most the number of rows (3)".into()));
    }

    #[test]
    fn a_singular_fold_names_the_alpha_by_its_grid_index() {
        // A feature that is always 0: XᵀX is singular, positive definite only with α > 0.
        let mut data = generated(10, 2);
        data.x.iter_mut().step_by(2).for_each(|x| *x = 0.0);
        assert!(score(&data, &[1.0], 0, 2, &mut Timings::default()).is_ok());
        let error = score(&data, &[1.0, 0.0], 3, 2, &mut Timings::default());
        let message = "alphas[4] = 0: XᵀX + αI of the training part of fold 1 of 2 is not positive definite";
        assert_eq!(error, Err(message.into()));
    }

    #[test]
    fn the_best_is_the_first_least_score() {
        let scores = [(0.0, 2.0), (1.0, 1.0), (2.0, 1.0), (3.0, 3.0)];
        let results: Vec<Score> = scores.iter().map(|&(alpha, mean_mse)| Score { alpha, mean_mse }).collect();
        assert_eq!(best(&results).map(|s| s.alpha), Some(1.0));
    }
}
