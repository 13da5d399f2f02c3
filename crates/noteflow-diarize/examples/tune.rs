//! Scratch: run the pipeline over RTTM-labelled files and print DER per file.
use noteflow_diarize::{audio, backend, metrics, models::ModelDir, pipeline::*, rttm};
use std::sync::atomic::AtomicBool;
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg = PipelineConfig::default();
    if let Ok(v) = std::env::var("STEP") {
        cfg.step_frames = v.parse().unwrap();
    }
    if let Ok(v) = std::env::var("THR") {
        cfg.threshold = v.parse().unwrap();
    }
    if let Ok(v) = std::env::var("MINCL") {
        cfg.min_cluster_seconds = v.parse().unwrap();
    }
    if let Ok(v) = std::env::var("MINFR") {
        cfg.min_cluster_fraction = v.parse().unwrap();
    }
    if let Ok(v) = std::env::var("MINOFF") {
        cfg.min_duration_off = v.parse().unwrap();
    }
    if let Ok(v) = std::env::var("MINON") {
        cfg.min_duration_on = v.parse().unwrap();
    }
    if let Ok(v) = std::env::var("MINCLEAN") {
        cfg.min_clean_seconds = v.parse().unwrap();
    }
    if std::env::var("CENTROID").is_ok() {
        cfg.linkage = noteflow_diarize::clustering::Linkage::Centroid;
    }
    if let Ok(v) = std::env::var("THREADS") {
        cfg.threads = v.parse().unwrap();
    }
    let b: Box<dyn backend::Backend> = Box::new(Timed {
        inner: backend::load(backend::BackendKind::Tract, &ModelDir::default_location()).unwrap(),
        seg: Default::default(),
        emb: Default::default(),
    });
    let d = Diarizer::new(b, cfg);
    let mut tot = metrics::DerReport::default();
    for wav in &args {
        let a = audio::decode_file(std::path::Path::new(wav)).unwrap();
        let t = Instant::now();
        let out = d
            .diarize(
                &a,
                SpeakerConstraints::auto(),
                &mut |_| {},
                &AtomicBool::new(false),
            )
            .unwrap();
        let el = t.elapsed().as_secs_f64();
        let r = rttm::read_rttm_file(wav.replace(".wav", ".rttm")).unwrap();
        let reference = r.values().next().unwrap();
        let nref = reference
            .iter()
            .map(|t| &t.speaker)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let rep = metrics::der(reference, &out.turns, None, &Default::default());
        println!(
            "{wav}: spk {}/{} DER {:.2}% (miss {:.2} fa {:.2} conf {:.2}) rtf {:.4}",
            out.speakers.len(),
            nref,
            rep.der * 100.0,
            rep.miss,
            rep.false_alarm,
            rep.confusion,
            el / a.duration_secs()
        );
        tot += rep;
    }
    println!("TOTAL DER {:.2}%", tot.der * 100.0);
}

use std::sync::atomic::{AtomicU64, Ordering};
struct Timed {
    inner: Box<dyn backend::Backend>,
    seg: AtomicU64,
    emb: AtomicU64,
}
impl backend::Backend for Timed {
    fn name(&self) -> &'static str {
        "timed"
    }
    fn segment(&self, w: &[f32]) -> Result<Vec<f32>, noteflow_diarize::models::ModelError> {
        let t = Instant::now();
        let r = self.inner.segment(w);
        let n = self.seg.fetch_add(1, Ordering::Relaxed);
        if n % 20 == 0 {
            eprintln!("seg#{n} {:?}", t.elapsed());
        }
        r
    }
    fn embed(&self, w: &[f32]) -> Result<Vec<f32>, noteflow_diarize::models::ModelError> {
        let t = Instant::now();
        let r = self.inner.embed(w);
        let n = self.emb.fetch_add(1, Ordering::Relaxed);
        if n % 20 == 0 {
            eprintln!("emb#{n} {:?}", t.elapsed());
        }
        r
    }
}
