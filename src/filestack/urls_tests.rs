//! The URL vectors of protocol reference sections 11.2 and 11.3, computed with
//! filestack-python 4.0.0.

use super::{Align, Degrees, Fit, Format, Horizontal, Resize, Rotate, Transform, Vertical};
use super::{cdn_url, signed_url};
use crate::filestack::policy::{Call, Policy, Security};
use crate::secret::Secret;

const CDN: &str = "https://cdn.filestackcontent.com";
const HANDLE: &str = "AbCdEfGhIjKlMnOpQrSt";
const SECURITY_TASK: &str = "security=p:eyJjYWxsIjogWyJyZWFkIiwgImNvbnZlcnQiXSwgImV4cGlyeSI6IDE3MDAwMDAwMDAsICJoYW5kbGUiOiAiQWJDZEVmR2hJaktsTW5PcFFyU3QifQ==,s:d061aa949aebea5a6862e536b19f18349f8f57f3cfdd9871dbf4e939714decf8";

fn vector_security() -> Security {
    let policy = Policy::new(1_700_000_000, &[Call::Read, Call::Convert]).with_handle(HANDLE);
    Security::sign(&policy, &Secret::new("test-app-secret"))
}

#[test]
fn a_filelink_url_matches_the_python_sdk() {
    assert_eq!(
        cdn_url(CDN, HANDLE),
        "https://cdn.filestackcontent.com/AbCdEfGhIjKlMnOpQrSt"
    );
}

#[test]
fn a_signed_filelink_url_matches_the_python_sdk_byte_for_byte() {
    assert_eq!(
        signed_url(CDN, HANDLE, &vector_security()),
        format!("https://cdn.filestackcontent.com/{SECURITY_TASK}/AbCdEfGhIjKlMnOpQrSt")
    );
}

fn resize_crop_enhance() -> Transform {
    Transform::new(HANDLE)
        .resize(Resize {
            width: Some(200),
            height: Some(200),
            fit: Some(Fit::Crop),
            align: None,
        })
        .enhance()
}

#[test]
fn a_transformation_url_matches_the_python_sdk() {
    assert_eq!(
        resize_crop_enhance().url(CDN),
        "https://cdn.filestackcontent.com/resize=fit:crop,height:200,width:200/enhance/AbCdEfGhIjKlMnOpQrSt"
    );
}

#[test]
fn a_signed_transformation_url_matches_the_python_sdk_byte_for_byte() {
    assert_eq!(
        resize_crop_enhance().signed_url(CDN, &vector_security()),
        format!(
            "https://cdn.filestackcontent.com/resize=fit:crop,height:200,width:200/enhance/{SECURITY_TASK}/AbCdEfGhIjKlMnOpQrSt"
        )
    );
}

fn tasks_of(transform: Transform) -> String {
    let url = transform.url(CDN);
    let tail = url.trim_start_matches(CDN).trim_end_matches(HANDLE);
    tail.trim_matches('/').to_owned()
}

#[test]
fn crop_rotate_output_and_align_take_the_python_shapes() {
    assert_eq!(
        tasks_of(Transform::new(HANDLE).crop(10, 20, 300, 400)),
        "crop=dim:[10,20,300,400]"
    );
    let rotate = Rotate {
        deg: Degrees::Exif,
        exif: Some(false),
        background: Some("white".into()),
    };
    assert_eq!(
        tasks_of(Transform::new(HANDLE).rotate(rotate)),
        "rotate=background:white,deg:exif,exif:false"
    );
    assert_eq!(tasks_of(Transform::new(HANDLE).rotate(90)), "rotate=deg:90");
    assert_eq!(
        tasks_of(Transform::new(HANDLE).output(Format::Webp, Some(80))),
        "output=format:webp,quality:80"
    );
    let aligned = Resize {
        width: Some(10),
        align: Some(Align::Pair(Vertical::Top, Horizontal::Left)),
        ..Resize::default()
    };
    assert_eq!(
        tasks_of(Transform::new(HANDLE).resize(aligned)),
        "resize=align:[top,left],width:10"
    );
}

#[test]
fn out_of_range_values_are_brought_into_range() {
    assert_eq!(
        tasks_of(Transform::new(HANDLE).output(Format::Jpg, Some(0))),
        "output=format:jpg,quality:1"
    );
    assert_eq!(
        tasks_of(Transform::new(HANDLE).rotate(450)),
        "rotate=deg:90"
    );
    let sneaky = Rotate {
        deg: Degrees::Angle(0),
        exif: None,
        background: Some("red/../x,y".into()),
    };
    assert_eq!(
        tasks_of(Transform::new(HANDLE).rotate(sneaky)),
        "rotate=background:redxy,deg:0"
    );
}
