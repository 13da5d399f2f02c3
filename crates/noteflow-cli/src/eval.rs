//! `noteflow eval`: DER and JER of hypothesis RTTM files against references, file by file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use noteflow_diarize::rttm::read_rttm_file;
use noteflow_diarize::scoring::{self, DerReport, ScoringOptions};
use noteflow_diarize::Turn;

#[derive(Args)]
pub struct EvalArgs {
    /// Directory (or single file) of reference RTTM.
    #[arg(long = "ref")]
    reference: PathBuf,
    /// Directory (or single file) of hypothesis RTTM.
    #[arg(long = "hyp")]
    hypothesis: PathBuf,
    /// Collar in seconds, pyannote.metrics' meaning: total width, half each side of every
    /// reference boundary.
    #[arg(long, default_value_t = 0.0)]
    collar: f64,
    /// Do not score overlapped speech.
    #[arg(long)]
    skip_overlap: bool,
}

/// All turns of all `.rttm` files under `path`, by file id.
fn load(path: &Path) -> Result<BTreeMap<String, Vec<Turn>>> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("rttm"))
            })
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut all = BTreeMap::new();
    for file in files {
        for (id, turns) in
            read_rttm_file(&file).with_context(|| format!("reading {}", file.display()))?
        {
            all.entry(id).or_insert_with(Vec::new).extend(turns);
        }
    }
    Ok(all)
}

pub fn run(args: EvalArgs) -> Result<()> {
    if !(args.collar >= 0.0 && args.collar.is_finite()) {
        bail!(
            "--collar must be a non-negative number of seconds, got {}",
            args.collar
        );
    }
    let reference = load(&args.reference)?;
    let mut hypothesis = load(&args.hypothesis)?;
    // Two single files, one recording each: compare them whatever their file ids say.
    if args.reference.is_file()
        && args.hypothesis.is_file()
        && reference.len() == 1
        && hypothesis.len() == 1
    {
        let turns = hypothesis.pop_first().map(|(_, t)| t).unwrap_or_default();
        hypothesis.insert(reference.keys().next().cloned().unwrap_or_default(), turns);
    }
    if reference.is_empty() {
        bail!("no reference turns found in {}", args.reference.display());
    }
    let opts = ScoringOptions {
        collar: args.collar,
        skip_overlap: args.skip_overlap,
    };
    println!(
        "{:<32} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
        "file", "scored_s", "miss_s", "fa_s", "conf_s", "DER%", "JER%", "spk h/r"
    );
    let mut total = DerReport::default();
    let mut missing = Vec::new();
    let empty = Vec::new();
    for (id, ref_turns) in &reference {
        let hyp_turns = hypothesis.get(id).unwrap_or_else(|| {
            missing.push(id.clone());
            &empty
        });
        let der = scoring::der(ref_turns, hyp_turns, None, &opts);
        let jer = scoring::jer(ref_turns, hyp_turns, None, &opts);
        let count = |t: &[Turn]| {
            t.iter()
                .map(|t| &t.speaker)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        println!(
            "{:<32} {:>9.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7.2} {:>3}/{:<3}",
            id,
            der.total,
            der.miss,
            der.false_alarm,
            der.confusion,
            der.der * 100.0,
            jer.jer * 100.0,
            count(hyp_turns),
            count(ref_turns)
        );
        total += der;
    }
    println!(
        "{:<32} {:>9.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        "TOTAL",
        total.total,
        total.miss,
        total.false_alarm,
        total.confusion,
        total.der * 100.0
    );
    for id in missing {
        eprintln!("warning: no hypothesis for {id}: scored as all missed");
    }
    for id in hypothesis.keys().filter(|id| !reference.contains_key(*id)) {
        eprintln!("warning: hypothesis {id} has no reference: not scored");
    }
    Ok(())
}
