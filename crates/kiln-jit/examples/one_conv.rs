// probe: one conv, repeated (perf target)
use kiln_ir::ops::Conv2d;
use kiln_ir::{Graph, Tensor, TensorType};
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|x| x.parse().unwrap()).collect();
    let (c, h, o, k, threads, reps) = (a[0], a[1], a[2], a[3], a[4], a[5]);
    let mut g = Graph::new("one");
    let x = g.add_input("x", TensorType::f32([1, c, h, h]));
    let w = g.add_param("w", TensorType::f32([o, c, k, k]));
    let b = g.add_param("b", TensorType::f32([o]));
    let mut conv = Conv2d::new(k, 1, k / 2);
    conv.bias = true;
    conv.epilogue.relu = true;
    let y = g.add(conv, &[x, w, b]).unwrap();
    g.set_outputs(vec![y]);
    let p = kiln_models::init_params(&g, 1);
    let m = kiln_jit::compile(&g, &p, &kiln_jit::Options { threads, ..Default::default() }).unwrap();
    let xin = vec![Tensor::filled(&[1, c, h, h], 0.5)];
    let macs = kiln_ir::cost::cost(&g).macs as f64;
    let mut best = f64::MAX;
    let flush = std::env::var("FLUSH").is_ok();
    let mut junk = vec![1.0f32; 16 << 20];
    for _ in 0..reps {
        if flush {
            junk.iter_mut().for_each(|v| *v += 1.0);
        }
        let mut t = Vec::new();
        m.run_profiled(&xin, Some(&mut t)).unwrap();
        let s: f64 = t.iter().filter(|(n, _)| n.starts_with("conv")).map(|(_, d)| d.as_secs_f64()).sum();
        best = best.min(s);
    }
    println!("{}", junk[7]);
    println!("conv {c}->{o} {h}x{h} k{k}: best {:.3} ms = {:.1} GFLOP/s", best * 1e3, 2.0 * macs / best / 1e9);
}
