//! Tuning harness: run the pipeline with settings from the environment over RTTM-labelled audio
//! files (a `NAME.rttm` beside each `NAME.wav`) and print speakers found and DER per file and in
//! total. BENCHMARKS.md's tuning tables come from it, e.g.
//!
//! ```sh
//! STEP=148 THR=0.3 cargo run --release --example tune -p noteflow-diarize -- \
//!     testdata/pyannote-sample.wav testdata/synth/*.wav
//! ```
//!
//! Settings: STEP (frames), THR, MINCL (s), MINFR, MINOFF (s), MINON (s), MINCLEAN (s), THREADS,
//! CENTROID (any value: centroid linkage).

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use noteflow_diarize::clustering::Linkage;
use noteflow_diarize::rttm::read_rttm_file;
use noteflow_diarize::scoring::{self, DerReport, ScoringOptions};
use noteflow_diarize::{
    decode_file, BackendKind, Diarizer, ModelDir, PipelineConfig, SpeakerConstraints,
};

fn setting<T: FromStr>(name: &str, target: &mut T) {
    if let Ok(value) = std::env::var(name) {
        *target = value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a valid value"));
    }
}

fn main() {
    let mut config = PipelineConfig::default();
    setting("STEP", &mut config.step_frames);
    setting("THR", &mut config.threshold);
    setting("MINCL", &mut config.min_cluster_seconds);
    setting("MINFR", &mut config.min_cluster_fraction);
    setting("MINOFF", &mut config.min_duration_off);
    setting("MINON", &mut config.min_duration_on);
    setting("MINCLEAN", &mut config.min_clean_seconds);
    setting("THREADS", &mut config.threads);
    if std::env::var_os("CENTROID").is_some() {
        config.linkage = Linkage::Centroid;
    }
    let diarizer = Diarizer::load(BackendKind::Tract, &ModelDir::default_location(), config)
        .expect("models load");
    let mut total = DerReport::default();
    for wav in std::env::args().skip(1) {
        let audio = decode_file(Path::new(&wav)).expect("audio decodes");
        let started = Instant::now();
        let result = diarizer
            .diarize(
                &audio,
                SpeakerConstraints::auto(),
                &mut |_| {},
                &AtomicBool::new(false),
            )
            .expect("diarization succeeds");
        let elapsed = started.elapsed().as_secs_f64();
        let reference: Vec<_> = read_rttm_file(Path::new(&wav).with_extension("rttm"))
            .expect("reference RTTM beside the audio")
            .into_values()
            .flatten()
            .collect();
        let speakers = reference
            .iter()
            .map(|t| &t.speaker)
            .collect::<BTreeSet<_>>()
            .len();
        let report = scoring::der(&reference, &result.turns, None, &ScoringOptions::default());
        println!(
            "{wav}: spk {}/{speakers} DER {:.2}% (miss {:.2} fa {:.2} conf {:.2}) rtf {:.4}",
            result.speakers.len(),
            report.der * 100.0,
            report.miss,
            report.false_alarm,
            report.confusion,
            elapsed / audio.duration_secs()
        );
        total += report;
    }
    println!("TOTAL DER {:.2}%", total.der * 100.0);
}
