use std::time::Instant;
use tract_onnx::prelude::*;
fn main() {
    let p = "models/campplus-zh-en-common.onnx";
    for t in [200usize, 500, 1000] {
        let t0 = Instant::now();
        let m = tract_onnx::onnx()
            .model_for_path(p)
            .unwrap()
            .with_input_fact(0, f32::fact([1, t, 80]).into())
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let lt = t0.elapsed();
        let x = Tensor::from_shape(&[1, t, 80], &vec![0.1f32; t * 80]).unwrap();
        for _ in 0..3 {
            let t1 = Instant::now();
            let _ = m.run(tvec!(x.clone().into())).unwrap();
            println!("T={t} load {lt:?} run {:?}", t1.elapsed());
        }
    }
}
