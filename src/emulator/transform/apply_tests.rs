use std::io::Cursor;

use image::{DynamicImage, GenericImageView, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

use super::{Rendered, Task, TransformError, apply};

/// Encodes `image` in `format`.
fn encoded(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, format)
        .unwrap_or_else(|e| panic!("{e}"));
    bytes.into_inner()
}

/// A colourful gradient of the given size.
fn gradient(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128])
    }))
}

fn tasks(segments: &[&str]) -> Vec<Task> {
    segments
        .iter()
        .map(|s| Task::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")))
        .collect()
}

fn run(input: &[u8], segments: &[&str]) -> Rendered {
    apply(input, &tasks(segments)).unwrap_or_else(|e| panic!("{segments:?}: {e}"))
}

fn decoded(rendered: &Rendered) -> DynamicImage {
    image::load_from_memory(&rendered.bytes).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn resize_modes_through_apply_give_the_expected_sizes() {
    let png = encoded(&gradient(400, 200), ImageFormat::Png);
    let size = |task: &str| decoded(&run(&png, &[task])).dimensions();
    assert_eq!(size("resize=width:200,height:200"), (200, 100));
    assert_eq!(size("resize=width:200,height:200,fit:crop"), (200, 200));
    assert_eq!(size("resize=width:200,height:200,fit:scale"), (200, 200));
    assert_eq!(size("resize=width:800,height:800,fit:max"), (400, 200));
    assert_eq!(size("resize=height:50"), (100, 50));
}

#[test]
fn tasks_run_left_to_right() {
    let png = encoded(&gradient(400, 200), ImageFormat::Png);
    let out = decoded(&run(&png, &["crop=dim:[0,0,100,200]", "rotate=deg:90"]));
    assert_eq!(out.dimensions(), (200, 100));
    let out = decoded(&run(&png, &["rotate=deg:90", "crop=dim:[0,0,100,200]"]));
    assert_eq!(out.dimensions(), (100, 200));
}

#[test]
fn flip_and_flop_move_a_marked_pixel() {
    let mut marked = RgbImage::from_pixel(10, 6, Rgb([0, 0, 0]));
    marked.put_pixel(1, 1, Rgb([255, 255, 255]));
    let png = encoded(&DynamicImage::ImageRgb8(marked), ImageFormat::Png);
    let white_at = |segments: &[&str], x, y| {
        decoded(&run(&png, segments)).to_rgb8().get_pixel(x, y).0 == [255; 3]
    };
    assert!(white_at(&["flip"], 1, 4));
    assert!(white_at(&["flop"], 8, 1));
    assert!(white_at(&["flip", "flop"], 8, 4));
    assert!(!white_at(&["flip"], 1, 1));
}

#[test]
fn the_output_format_shows_in_the_magic_bytes_and_the_mimetype() {
    let png = encoded(&gradient(64, 48), ImageFormat::Png);
    let cases: [(&str, &[u8], &str); 5] = [
        ("output=format:jpg", &[0xFF, 0xD8, 0xFF], "image/jpeg"),
        ("output=f:pjpg", &[0xFF, 0xD8, 0xFF], "image/jpeg"),
        ("output=format:png", b"\x89PNG", "image/png"),
        ("output=format:webp,quality:80", b"RIFF", "image/webp"),
        ("output=format:gif", b"GIF8", "image/gif"),
    ];
    for (task, magic, mimetype) in cases {
        let out = run(&png, &[task]);
        assert!(out.bytes.starts_with(magic), "{task}");
        assert_eq!(out.mimetype, mimetype, "{task}");
        assert_eq!(decoded(&out).dimensions(), (64, 48), "{task}");
    }
    assert_eq!(&run(&png, &["output=format:webp"]).bytes[8..12], b"WEBP");
}

#[test]
fn without_output_jpeg_stays_jpeg_and_other_formats_become_png() {
    let image = gradient(32, 32);
    let jpeg = run(&encoded(&image, ImageFormat::Jpeg), &["flip"]);
    assert_eq!(jpeg.mimetype, "image/jpeg");
    assert!(jpeg.bytes.starts_with(&[0xFF, 0xD8]));
    for format in [ImageFormat::Png, ImageFormat::Gif, ImageFormat::WebP] {
        let out = run(&encoded(&image, format), &["flop"]);
        assert_eq!(out.mimetype, "image/png", "{format:?}");
        assert!(out.bytes.starts_with(b"\x89PNG"), "{format:?}");
    }
}

#[test]
fn jpeg_quality_changes_the_size_and_the_last_setting_wins() {
    let png = encoded(&gradient(256, 256).blur(1.0), ImageFormat::Png);
    let low = run(&png, &["output=format:jpg,quality:10"]).bytes.len();
    let high = run(&png, &["output=format:jpg,quality:95"]).bytes.len();
    assert!(low < high, "quality 10 gave {low} bytes, 95 gave {high}");
    let overridden = run(&png, &["output=format:jpg,quality:95", "quality=value:10"])
        .bytes
        .len();
    assert_eq!(overridden, low);
}

#[test]
fn transparency_is_flattened_onto_the_background_for_jpeg() {
    let clear = DynamicImage::ImageRgba8(RgbaImage::from_pixel(16, 16, Rgba([0, 0, 0, 0])));
    let png = encoded(&clear, ImageFormat::Png);
    let white = decoded(&run(&png, &["output=format:jpg"])).to_rgb8();
    assert!(white.get_pixel(8, 8).0.iter().all(|&c| c > 245));
    let red = decoded(&run(&png, &["output=format:jpg,background:red"])).to_rgb8();
    let [r, g, b] = red.get_pixel(8, 8).0;
    assert!(r > 240 && g < 15 && b < 15, "{r},{g},{b}");
    let kept = decoded(&run(&png, &["flip"]));
    assert_eq!(kept.to_rgba8().get_pixel(8, 8).0[3], 0);
}

#[test]
fn colour_tasks_do_what_they_say() {
    let png = encoded(
        &DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, Rgb([200, 50, 10]))),
        ImageFormat::Png,
    );
    let pixel = |task: &str| decoded(&run(&png, &[task])).to_rgb8().get_pixel(4, 4).0;
    assert_eq!(pixel("negative"), [55, 205, 245]);
    let [r, g, b] = pixel("monochrome");
    assert!(r == g && g == b, "{r},{g},{b}");
    assert!(matches!(pixel("blackwhite"), [0, 0, 0] | [255, 255, 255]));
    let [r, g, b] = pixel("sepia=tone:100");
    assert!(r >= g && g >= b);
}

#[test]
fn text_is_not_an_image() {
    let err = apply(b"hello, this is a text file\n", &tasks(&["flip"])).err();
    assert!(matches!(err, Some(TransformError::NotAnImage)), "{err:?}");
    let mut png = encoded(&gradient(64, 64), ImageFormat::Png);
    png.truncate(60);
    assert!(matches!(apply(&png, &[]), Err(TransformError::NotAnImage)));
}

#[test]
fn an_image_declaring_too_many_pixels_is_refused_before_decoding() {
    let mut gif = encoded(&gradient(2, 2), ImageFormat::Gif);
    // Logical screen width and height, little-endian, right after "GIF89a".
    gif[6..10].copy_from_slice(&[0x10, 0x27, 0x10, 0x27]);
    let err = apply(&gif, &[]).err();
    assert!(
        matches!(err, Some(TransformError::TooLarge { .. })),
        "{err:?}"
    );
}

#[test]
fn a_two_megapixel_photo_goes_through_a_long_chain() {
    let jpeg = encoded(&gradient(1600, 1250), ImageFormat::Jpeg);
    let segments = [
        "rotate=deg:exif",
        "enhance",
        "sharpen=amount:3",
        "blur=amount:12",
        "rotate=deg:30",
        "resize=width:800,height:600,fit:crop,align:bottom",
        "output=format:webp",
    ];
    let out = run(&jpeg, &segments);
    assert_eq!(out.mimetype, "image/webp");
    assert_eq!(decoded(&out).dimensions(), (800, 600));
}

/// `jpeg` with an EXIF APP1 segment saying "rotate 90 degrees clockwise".
fn with_exif_orientation_6(jpeg: &[u8]) -> Vec<u8> {
    let mut app1 = vec![0xFF, 0xE1, 0x00, 0x22];
    app1.extend_from_slice(b"Exif\0\0MM\0\x2a\0\0\0\x08");
    app1.extend_from_slice(&[0x00, 0x01, 0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01]);
    app1.extend_from_slice(&[0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn rotate_exif_uses_the_orientation_stored_in_the_jpeg() {
    let jpeg = with_exif_orientation_6(&encoded(&gradient(40, 20), ImageFormat::Jpeg));
    assert_eq!(
        decoded(&run(&jpeg, &["rotate=deg:exif"])).dimensions(),
        (20, 40)
    );
    assert_eq!(decoded(&run(&jpeg, &["flip"])).dimensions(), (40, 20));
    let plain = encoded(&gradient(40, 20), ImageFormat::Jpeg);
    assert_eq!(
        decoded(&run(&plain, &["rotate=deg:exif"])).dimensions(),
        (40, 20)
    );
}
