//! The transform module through its public interface, as the emulator's CDN
//! routes use it: a URL path in, encoded image bytes out.

use filegate::emulator::transform::{TransformError, apply, canonical, parse_chain};
use filegate::filestack::policy::{Call, Policy, Security};
use filegate::secret::Secret;
use support::content::{dimensions, jpeg};

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

    let rendered = apply(&jpeg(400, 300), &chain.tasks).expect("the chain applies");
    assert_eq!(rendered.mimetype, "image/jpeg");
    assert_eq!(dimensions(&rendered.bytes), (200, 200));
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
