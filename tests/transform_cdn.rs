//! The transform module through its public interface, as the emulator's CDN
//! routes use it: a URL path in, encoded image bytes out.

use std::io::Cursor;

use filegate::emulator::transform::{TransformError, apply, canonical, parse_chain};
use filegate::filestack::policy::{Call, Policy, Security};
use filegate::secret::Secret;
use image::{DynamicImage, GenericImageView, ImageFormat, Rgb, RgbImage};

fn photo(width: u32, height: u32) -> Vec<u8> {
    let image = DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    }));
    let mut bytes = Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, ImageFormat::Jpeg)
        .expect("encoding the test photo");
    bytes.into_inner()
}

#[test]
fn a_signed_python_transformation_url_renders_a_cropped_enhanced_jpeg() {
    let secret = Secret::new("test-app-secret");
    let policy = Policy::new(4_000_000_000, &[Call::Read, Call::Convert])
        .with_handle("AbCdEfGhIjKlMnOpQrSt");
    let security = Security::sign(&policy, &secret);
    let path = format!(
        "resize=fit:crop,height:200,width:200/enhance/{}/AbCdEfGhIjKlMnOpQrSt",
        security.url_task()
    );

    let chain = parse_chain(&path).expect("the path parses");
    let verified = chain
        .security
        .as_ref()
        .expect("security present")
        .verify(&secret);
    assert_eq!(
        verified.map(|p| p.handle),
        Ok(Some("AbCdEfGhIjKlMnOpQrSt".to_owned()))
    );
    assert_eq!(chain.handle, "AbCdEfGhIjKlMnOpQrSt");

    let rendered = apply(&photo(400, 300), &chain.tasks).expect("the chain applies");
    assert_eq!(rendered.mimetype, "image/jpeg");
    let out = image::load_from_memory(&rendered.bytes).expect("a decodable result");
    assert_eq!(out.dimensions(), (200, 200));
}

#[test]
fn equivalent_urls_share_a_cache_key_and_a_plain_download_has_no_tasks() {
    let a = parse_chain("APIKEY123/output=quality:70,format:png/rotate=deg:90/HANDLE1").expect("a");
    let b = parse_chain("rotate=d:90/output=f:png,q:70/HANDLE1").expect("b");
    assert_ne!(
        canonical(&a.tasks),
        canonical(&b.tasks),
        "task order matters"
    );
    let c = parse_chain("output=f:png,q:70/rotate=d:90/HANDLE1").expect("c");
    assert_eq!(canonical(&a.tasks), canonical(&c.tasks));
    assert!(parse_chain("HANDLE1").expect("plain").tasks.is_empty());
}

#[test]
fn a_stored_text_file_cannot_be_transformed() {
    let chain = parse_chain("resize=width:10/HANDLE1").expect("parses");
    let result = apply(b"%PDF-1.7 not really an image", &chain.tasks);
    assert!(matches!(result, Err(TransformError::NotAnImage)));
}
