//! The parameter store: safetensors round trips, skipped dtypes, hostile files.

use kiln_ir::{ParamStore, Tensor};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

fn sample() -> ParamStore {
    let mut s = ParamStore::new();
    s.insert(
        "layer1.0.conv1.weight",
        Tensor::new(vec![2, 1, 1, 2], vec![1.0, -2.0, 3.5, 1e-7]).unwrap(),
    );
    s.insert(
        "fc.bias",
        Tensor::new(vec![3], vec![0.0, f32::MAX, -0.0]).unwrap(),
    );
    s
}

#[test]
fn save_and_load_round_trip() {
    let s = sample();
    let bytes = s.to_bytes().unwrap();
    let back = ParamStore::from_bytes(&bytes, "mem").unwrap();
    assert_eq!(back, s);
    let dir = std::env::temp_dir().join(format!("kiln-params-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.safetensors");
    s.save(&path).unwrap();
    assert_eq!(ParamStore::load(&path).unwrap(), s);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn int64_tensors_are_skipped_and_listed() {
    let counter: Vec<u8> = 7i64.to_le_bytes().to_vec();
    let w: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let views = vec![
        (
            "bn1.num_batches_tracked".to_string(),
            TensorView::new(Dtype::I64, vec![], &counter).unwrap(),
        ),
        (
            "bn1.weight".to_string(),
            TensorView::new(Dtype::F32, vec![2], &w).unwrap(),
        ),
    ];
    let bytes = safetensors::serialize(views, None).unwrap();
    let s = ParamStore::from_bytes(&bytes, "bn.safetensors").unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s.get("bn1.weight").unwrap().data, vec![1.0, 2.0]);
    assert_eq!(s.skipped, vec!["bn1.num_batches_tracked".to_string()]);
}

#[test]
fn every_truncation_is_an_error_naming_the_file() {
    let bytes = sample().to_bytes().unwrap();
    for len in 0..bytes.len() {
        let e = ParamStore::from_bytes(&bytes[..len], "cut.safetensors")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cut.safetensors"), "{e}");
    }
}

#[test]
fn corrupted_headers_are_errors_not_panics() {
    let bytes = sample().to_bytes().unwrap();
    let mut rng = 0x9e3779b97f4a7c15u64;
    for _ in 0..3000 {
        let mut b = bytes.clone();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let at = (rng as usize) % b.len().min(200);
        b[at] = (rng >> 32) as u8;
        let _ = ParamStore::from_bytes(&b, "mutated.safetensors");
    }
}

#[test]
fn an_absurd_header_length_is_refused() {
    let mut b = (1u64 << 40).to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    assert!(ParamStore::from_bytes(&b, "huge.safetensors").is_err());
}

#[test]
fn a_missing_file_names_the_path() {
    let e = ParamStore::load("/nonexistent/w.safetensors")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/w.safetensors"), "{e}");
}
