use image::metadata::Orientation;
use image::{DynamicImage, GenericImageView, Rgb, RgbImage};

use super::{crop, resize, rotate};
use crate::emulator::transform::TransformError;
use crate::emulator::transform::spec::{Align, Fit, HAlign, Rect, Resize, Rotate, VAlign};

const RED: [u8; 3] = [255, 0, 0];
const BLUE: [u8; 3] = [0, 0, 255];

/// Left half red, right half blue (or top/bottom when `vertical`).
fn two_colours(width: u32, height: u32, vertical: bool) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        let first = if vertical {
            y < height / 2
        } else {
            x < width / 2
        };
        Rgb(if first { RED } else { BLUE })
    }))
}

fn box_resize(width: Option<u32>, height: Option<u32>, fit: Fit) -> Resize {
    Resize {
        width,
        height,
        fit,
        align: Align::default(),
    }
}

fn size_after(image: &DynamicImage, r: &Resize) -> (u32, u32) {
    resize(image, r)
        .map(|i| i.dimensions())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn pixel(image: &DynamicImage, x: u32, y: u32) -> [u8; 3] {
    image.to_rgb8().get_pixel(x, y).0
}

#[test]
fn every_fit_mode_gives_the_documented_size() {
    let wide = two_colours(400, 200, false);
    let square = |fit| box_resize(Some(200), Some(200), fit);
    assert_eq!(size_after(&wide, &square(Fit::Clip)), (200, 100));
    assert_eq!(size_after(&wide, &square(Fit::Crop)), (200, 200));
    assert_eq!(size_after(&wide, &square(Fit::Scale)), (200, 200));
    assert_eq!(size_after(&wide, &square(Fit::Max)), (200, 100));
    let small = two_colours(100, 50, false);
    assert_eq!(size_after(&small, &square(Fit::Max)), (100, 50));
    assert_eq!(size_after(&small, &square(Fit::Clip)), (200, 100));
}

#[test]
fn one_side_alone_keeps_the_aspect_ratio_in_every_mode() {
    let wide = two_colours(400, 200, false);
    for fit in [Fit::Clip, Fit::Crop, Fit::Scale, Fit::Max] {
        assert_eq!(
            size_after(&wide, &box_resize(Some(100), None, fit)),
            (100, 50)
        );
        assert_eq!(
            size_after(&wide, &box_resize(None, Some(50), fit)),
            (100, 50)
        );
    }
}

#[test]
fn crop_fit_keeps_the_aligned_part() {
    let wide = two_colours(600, 200, false);
    let aligned = |vertical, horizontal| Resize {
        align: Align {
            vertical,
            horizontal,
            faces: false,
        },
        ..box_resize(Some(100), Some(100), Fit::Crop)
    };
    let left =
        resize(&wide, &aligned(VAlign::Middle, HAlign::Left)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((pixel(&left, 0, 50), pixel(&left, 99, 50)), (RED, RED));
    let right =
        resize(&wide, &aligned(VAlign::Top, HAlign::Right)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((pixel(&right, 0, 0), pixel(&right, 99, 99)), (BLUE, BLUE));
    let centre =
        resize(&wide, &aligned(VAlign::Middle, HAlign::Center)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((pixel(&centre, 5, 50), pixel(&centre, 94, 50)), (RED, BLUE));

    let tall = two_colours(200, 600, true);
    let top = resize(&tall, &aligned(VAlign::Top, HAlign::Left)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((pixel(&top, 50, 0), pixel(&top, 50, 99)), (RED, RED));
    let bottom =
        resize(&tall, &aligned(VAlign::Bottom, HAlign::Center)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (pixel(&bottom, 50, 0), pixel(&bottom, 50, 99)),
        (BLUE, BLUE)
    );
}

#[test]
fn a_resize_past_the_pixel_cap_is_refused() {
    let thin = two_colours(1, 10_000, false);
    let err = resize(&thin, &box_resize(Some(10_000), None, Fit::Clip)).err();
    assert!(
        matches!(err, Some(TransformError::TooLarge { .. })),
        "{err:?}"
    );
}

#[test]
fn crop_takes_the_rectangle_and_clamps_it_to_the_image() {
    let wide = two_colours(400, 200, false);
    let rect = |x, y, width, height| Rect {
        x,
        y,
        width,
        height,
    };
    let inside = crop(&wide, rect(190, 10, 20, 30)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inside.dimensions(), (20, 30));
    assert_eq!((pixel(&inside, 0, 0), pixel(&inside, 19, 0)), (RED, BLUE));
    let clamped = crop(&wide, rect(300, 100, 300, 400)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(clamped.dimensions(), (100, 100));
}

#[test]
fn a_crop_entirely_outside_the_image_names_dim() {
    let wide = two_colours(400, 200, false);
    let err = crop(
        &wide,
        Rect {
            x: 400,
            y: 0,
            width: 10,
            height: 10,
        },
    )
    .err();
    assert!(
        matches!(err, Some(TransformError::BadParam { ref param, .. }) if param == "dim"),
        "{err:?}"
    );
}

fn rotation(degrees: Option<u32>) -> Rotate {
    Rotate {
        degrees,
        exif: None,
        background: [255, 255, 255, 255],
    }
}

#[test]
fn rotate_90_swaps_the_sides_and_turns_clockwise() {
    let mut marked = RgbImage::from_pixel(40, 20, Rgb([0, 0, 0]));
    marked.put_pixel(0, 0, Rgb(RED));
    let image = DynamicImage::ImageRgb8(marked);
    let turned = rotate(&image, &rotation(Some(90)), Orientation::NoTransforms)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(turned.dimensions(), (20, 40));
    assert_eq!(pixel(&turned, 19, 0), RED);
    let back = rotate(&image, &rotation(Some(270)), Orientation::NoTransforms)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pixel(&back, 0, 39), RED);
}

#[test]
fn rotate_by_an_odd_angle_grows_the_canvas_and_fills_the_corners() {
    let image = DynamicImage::ImageRgb8(RgbImage::from_pixel(100, 100, Rgb([0, 0, 0])));
    let r = Rotate {
        background: [0, 255, 0, 255],
        ..rotation(Some(45))
    };
    let turned = rotate(&image, &r, Orientation::NoTransforms).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(turned.dimensions(), (142, 142));
    assert_eq!(pixel(&turned, 0, 0), [0, 255, 0]);
    assert_eq!(pixel(&turned, 71, 71), [0, 0, 0]);
}

#[test]
fn rotate_exif_follows_the_orientation_of_the_input() {
    let image = two_colours(40, 20, false);
    let turned =
        rotate(&image, &rotation(None), Orientation::Rotate90).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(turned.dimensions(), (20, 40));
    let same = rotate(&image, &rotation(None), Orientation::NoTransforms)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(same.dimensions(), (40, 20));
}
