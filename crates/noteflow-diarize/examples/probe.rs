use noteflow_diarize::{backend, fbank::Fbank, models::ModelDir};
use std::time::Instant;
fn main() {
    let t = Instant::now();
    let b = backend::load(backend::BackendKind::Tract, &ModelDir::default_location()).unwrap();
    println!("load {:?}", t.elapsed());
    let w: Vec<f32> = (0..160000)
        .map(|i| ((i as f32) * 0.01).sin() * 0.1)
        .collect();
    for _ in 0..3 {
        let t = Instant::now();
        let s = b.segment(&w).unwrap();
        println!("seg {:?} {}", t.elapsed(), s.len());
    }
    let fb = Fbank::new();
    for secs in [2usize, 5, 10] {
        let mut f = Vec::new();
        let t = Instant::now();
        fb.compute(&w[..secs * 16000], &mut f);
        let tf = t.elapsed();
        for _ in 0..2 {
            let t = Instant::now();
            let e = b.embed(&f).unwrap();
            println!(
                "emb {secs}s fbank {:?} emb {:?} {}",
                tf,
                t.elapsed(),
                e.len()
            );
        }
    }
}
