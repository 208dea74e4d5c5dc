//! Labelled/unlabeled index selection and the `Split` container.

use burnish::data::{labeled_indices, unlabeled_indices, DataError, DatasetKind, Split};

/// 10 classes with uneven sizes: class c has 5 + c images, interleaved.
fn uneven_labels() -> Vec<u16> {
    let mut labels = Vec::new();
    for round in 0..14u16 {
        for c in 0..10u16 {
            if round < 5 + c {
                labels.push(c);
            }
        }
    }
    labels
}

#[test]
fn labeled_split_is_class_balanced_sorted_and_distinct() {
    let labels = uneven_labels();
    let chosen = labeled_indices(&labels, 10, 4, 7).expect("enough images");
    assert_eq!(chosen.len(), 40);
    assert!(chosen.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
    let mut per_class = [0usize; 10];
    for &i in &chosen {
        per_class[usize::from(labels[i])] += 1;
    }
    assert_eq!(per_class, [4; 10]);
}

#[test]
fn labeled_split_is_deterministic_in_the_seed_and_nested() {
    let labels = uneven_labels();
    let a = labeled_indices(&labels, 10, 4, 1).expect("enough images");
    assert_eq!(a, labeled_indices(&labels, 10, 4, 1).expect("enough images"));
    let b = labeled_indices(&labels, 10, 4, 2).expect("enough images");
    assert_ne!(a, b, "another seed picks other images");
    let larger = labeled_indices(&labels, 10, 5, 1).expect("enough images");
    assert!(a.iter().all(|i| larger.contains(i)), "fewer labels are a subset of more");
}

#[test]
fn labeled_split_errors() {
    let labels = uneven_labels();
    match labeled_indices(&labels, 10, 6, 0) {
        Err(DataError::NotEnoughImages { class, available, requested }) => {
            assert_eq!((class, available, requested), (0, 5, 6))
        }
        other => panic!("expected NotEnoughImages, got {other:?}"),
    }
    assert!(matches!(
        labeled_indices(&[0, 1, 3], 3, 1, 0),
        Err(DataError::LabelOutOfRange { label: 3, num_classes: 3, .. })
    ));
}

#[test]
fn unlabeled_is_everything_or_the_rest() {
    assert_eq!(unlabeled_indices(5, &[1, 3], false), vec![0, 1, 2, 3, 4]);
    assert_eq!(unlabeled_indices(5, &[1, 3], true), vec![0, 2, 4]);
}

#[test]
fn in_memory_split_reads_subsets_and_names_sources() {
    let pixels: Vec<u8> = (0..3 * 2 * 2 * 3).map(|v| v as u8).collect();
    let split = Split::in_memory((3, 2, 2), vec![2, 0, 1], pixels.clone(), "blob.bin").expect("valid");
    assert_eq!(split.len(), 3);
    assert_eq!(split.image_bytes(), 12);
    let mut buf = vec![99; 3];
    split.read_pixels(1, &mut buf).expect("in range");
    assert_eq!(buf, pixels[12..24]);
    assert!(matches!(split.read_pixels(3, &mut buf), Err(DataError::Invalid(_))));
    assert_eq!(split.source_name(2), "blob.bin[#2]");

    let sub = split.subset(&[2, 0]).expect("in range");
    assert_eq!(sub.labels(), &[1, 2]);
    sub.read_pixels(0, &mut buf).expect("in range");
    assert_eq!(buf, pixels[24..36]);
    assert_eq!(sub.source_name(0), "blob.bin[#2]");
    assert_eq!(sub.source_name(1), "blob.bin[#0]");
    assert!(split.subset(&[3]).is_err());

    assert!(Split::in_memory((3, 2, 2), vec![0], vec![0; 11], "short").is_err());
    assert!(Split::in_memory((2, 2, 2), vec![0], vec![0; 8], "two channels").is_err());
}

#[test]
fn dataset_kind_names_round_trip() {
    for kind in DatasetKind::ALL {
        assert_eq!(kind.to_string().parse::<DatasetKind>().expect("own name parses"), kind);
    }
    assert_eq!("fashion-mnist".parse::<DatasetKind>().expect("known"), DatasetKind::FashionMnist);
    let err = "cifar".parse::<DatasetKind>().expect_err("unknown name");
    let msg = err.to_string();
    for name in ["fashion-mnist", "mnist", "cifar10", "cifar100", "image-folder", "synthetic"] {
        assert!(msg.contains(name), "{msg}");
    }
}
