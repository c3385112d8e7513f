use crate::emulator::transform::{Chain, TransformError, canonical, parse_chain};
use crate::filestack::policy::Security;
use crate::secret::Secret;

const HANDLE: &str = "AbCdEfGhIjKlMnOpQrSt";
const APIKEY: &str = "TESTAPIKEY0000000000000";
const P: &str = "eyJjYWxsIjogWyJyZWFkIiwgImNvbnZlcnQiXSwgImV4cGlyeSI6IDE3MDAwMDAwMDAsICJoYW5kbGUiOiAiQWJDZEVmR2hJaktsTW5PcFFyU3QifQ==";
const S: &str = "d061aa949aebea5a6862e536b19f18349f8f57f3cfdd9871dbf4e939714decf8";

fn chain(path: &str) -> Chain {
    parse_chain(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn names(chain: &Chain) -> Vec<&str> {
    chain.tasks.iter().map(|t| t.name()).collect()
}

fn bad_param(path: &str) -> (String, String) {
    match parse_chain(path) {
        Err(TransformError::BadParam { task, param, .. }) => (task, param),
        other => panic!("{path}: expected BadParam, got {other:?}"),
    }
}

#[test]
fn the_python_transformation_url_parses() {
    let c = chain(&format!(
        "resize=fit:crop,height:200,width:200/enhance/{HANDLE}"
    ));
    assert_eq!(c.apikey, None);
    assert_eq!(c.security, None);
    assert_eq!(names(&c), ["resize", "enhance"]);
    assert_eq!(c.handle, HANDLE);
    assert_eq!(
        canonical(&c.tasks),
        "resize=align:[middle,center],fit:crop,height:200,width:200/enhance"
    );
}

#[test]
fn the_signed_python_url_carries_a_security_that_verifies() {
    let c = chain(&format!(
        "resize=fit:crop,height:200,width:200/enhance/security=p:{P},s:{S}/{HANDLE}"
    ));
    assert_eq!(names(&c), ["resize", "enhance"]);
    let security = c.security.unwrap_or_else(|| panic!("no security"));
    assert_eq!(
        security,
        Security {
            policy: P.to_owned(),
            signature: S.to_owned()
        }
    );
    let policy = security
        .verify(&Secret::new("test-app-secret"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.handle.as_deref(), Some(HANDLE));
}

#[test]
fn a_signed_filelink_has_security_and_no_tasks() {
    let c = chain(&format!("security=p:{P},s:{S}/{HANDLE}"));
    assert!(c.tasks.is_empty());
    assert!(c.security.is_some());
    assert_eq!(c.handle, HANDLE);
}

#[test]
fn an_apikey_first_is_recognised_and_not_taken_for_a_task() {
    let c = chain(&format!("{APIKEY}/resize=width:200/{HANDLE}"));
    assert_eq!(c.apikey.as_deref(), Some(APIKEY));
    assert_eq!(names(&c), ["resize"]);
    let c = chain(&format!("{APIKEY}/{HANDLE}"));
    assert_eq!(
        (c.apikey.as_deref(), c.handle.as_str()),
        (Some(APIKEY), HANDLE)
    );
    let c = chain(&format!("flip/{HANDLE}"));
    assert_eq!((c.apikey.as_deref(), names(&c)), (None, vec!["flip"]));
}

#[test]
fn the_javascript_security_first_with_long_keys_in_either_order_parses() {
    for security in [
        format!("security=policy:{P},signature:{S}"),
        format!("security=signature:{S},policy:{P}"),
    ] {
        let c = chain(&format!("{APIKEY}/{security}/resize=width:10/\"{HANDLE}\""));
        assert_eq!(c.apikey.as_deref(), Some(APIKEY));
        assert_eq!(c.security.as_ref().map(|s| s.signature.as_str()), Some(S));
        assert_eq!(names(&c), ["resize"]);
        assert_eq!(c.handle, HANDLE);
    }
}

#[test]
fn the_other_python_url_shapes_parse() {
    let cases = [
        ("crop=dim:[10,20,300,400]", "crop=dim:[10,20,300,400]"),
        (
            "rotate=background:white,deg:exif,exif:false",
            "rotate=background:FFFFFFFF,deg:exif,exif:false",
        ),
        (
            "output=format:webp,quality:80",
            "output=format:webp,quality:80",
        ),
        (
            "resize=align:[top,left],width:10",
            "resize=align:[top,left],fit:clip,width:10",
        ),
        ("enhance=preset:vivid", "enhance=preset:vivid"),
        (
            "resize=align:faces,fit:crop,h:10,w:10",
            "resize=align:[faces,middle,center],fit:crop,height:10,width:10",
        ),
    ];
    for (task, expected) in cases {
        let c = chain(&format!("{task}/{HANDLE}"));
        assert_eq!(canonical(&c.tasks), expected, "{task}");
        assert_eq!(c.handle, HANDLE);
    }
}

#[test]
fn parameter_order_and_aliases_do_not_change_the_canonical_form() {
    let a = chain(&format!(
        "resize=width:200,height:100,fit:crop,align:[left,top]/{HANDLE}"
    ));
    let b = chain(&format!("resize=f:crop,h:100,a:[top,left],w:200/{HANDLE}"));
    assert_eq!(canonical(&a.tasks), canonical(&b.tasks));
    assert_eq!(a.tasks, b.tasks);
    let c = chain(&format!("resize=width:200,height:100/{HANDLE}"));
    assert_ne!(canonical(&a.tasks), canonical(&c.tasks));
    let d = chain(&format!("resize=width:200,height:100,fit:clip/{HANDLE}"));
    assert_eq!(canonical(&c.tasks), canonical(&d.tasks));
}

#[test]
fn cache_and_debug_are_accepted_and_dropped() {
    let c = chain(&format!("cache=false/debug/cache=expiry:60/flip/{HANDLE}"));
    assert_eq!(names(&c), ["flip"]);
}

#[test]
fn quoted_and_percent_encoded_sources_are_unquoted() {
    assert_eq!(chain(&format!("flip/\"{HANDLE}\"")).handle, HANDLE);
    assert_eq!(chain(&format!("flip/%22{HANDLE}%22")).handle, HANDLE);
    assert_eq!(chain(&format!("/{HANDLE}")).handle, HANDLE);
}

#[test]
fn sources_that_are_not_one_handle_are_refused() {
    for path in [
        format!("{APIKEY}/resize=width:200/https://example.com/a.jpg"),
        format!("{APIKEY}/upscale/\"https://cdn.filestackcontent.com/{HANDLE}\""),
        format!("{APIKEY}/zip/[h1,h2]"),
        format!("{APIKEY}/resize=width:10/src://alias/a.jpg"),
        "a.b".to_owned(),
        String::new(),
    ] {
        assert!(
            matches!(parse_chain(&path), Err(TransformError::BadSource(_))),
            "{path}"
        );
    }
}

#[test]
fn a_task_the_emulator_lacks_is_unsupported_and_a_made_up_one_unknown() {
    let err = parse_chain(&format!("watermark=file:x/{HANDLE}"))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("task not supported by the emulator: watermark")
    );
    assert!(
        matches!(parse_chain(&format!("flip/frobnicate/{HANDLE}")), Err(TransformError::UnknownTask(n)) if n == "frobnicate")
    );
    assert!(matches!(
        parse_chain(&format!("frobnicate=x:1/{HANDLE}")),
        Err(TransformError::UnknownTask(_))
    ));
}

#[test]
fn bad_values_name_the_task_and_parameter() {
    let cases = [
        ("resize=width:0", "resize", "width"),
        ("resize=h:10001", "resize", "height"),
        ("resize=fit:stretch,width:10", "resize", "fit"),
        ("resize=fit:crop", "resize", "width"),
        ("resize=align:[top,bottom],width:10", "resize", "align"),
        ("resize=width:10,colour:red", "resize", "colour"),
        ("crop=dim:[1,2,3]", "crop", "dim"),
        ("crop=dim:[1,2,0,4]", "crop", "dim"),
        ("crop=dim:[-1,2,3,4]", "crop", "dim"),
        ("crop", "crop", "dim"),
        ("rotate=deg:360", "rotate", "deg"),
        ("rotate=deg:90,background:blurple", "rotate", "background"),
        ("rotate=exif:maybe", "rotate", "exif"),
        ("quality=value:101", "quality", "value"),
        ("quality", "quality", "value"),
        ("output=format:pdf", "output", "format"),
        ("output=format:png,quality:0", "output", "quality"),
        ("blur=amount:21", "blur", "amount"),
        ("blur=amount:0", "blur", "amount"),
        ("sharpen=amount:21", "sharpen", "amount"),
        ("sepia=tone:101", "sepia", "tone"),
        ("blackwhite=threshold:0", "blackwhite", "threshold"),
        ("enhance=preset:sparkly", "enhance", "preset"),
        ("flip=x:1", "flip", "x"),
        (&format!("security=p:{P}"), "security", "signature"),
        (&format!("security=s:{S}"), "security", "policy"),
        (&format!("security=p:{P},s:{S},x:1"), "security", "x"),
    ];
    for (task, expected_task, expected_param) in cases {
        let (t, p) = bad_param(&format!("{task}/{HANDLE}"));
        assert_eq!(
            (t.as_str(), p.as_str()),
            (expected_task, expected_param),
            "{task}"
        );
    }
}

#[test]
fn the_reason_of_a_bad_param_helps_the_developer() {
    let err = parse_chain(&format!("resize=width:20000/{HANDLE}"))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "invalid parameter width for resize: expected a whole number from 1 to 10000, got \"20000\""
        )
    );
}

#[test]
fn a_path_with_too_many_tasks_is_refused() {
    let path = format!("{}{HANDLE}", "flip/".repeat(40));
    assert!(matches!(
        parse_chain(&path),
        Err(TransformError::BadParam { .. })
    ));
    let path = format!("{}{HANDLE}", "flip/".repeat(30));
    assert_eq!(chain(&path).tasks.len(), 30);
}

#[test]
fn a_quoted_standard_base64_policy_with_a_slash_stays_whole() {
    let c = chain(&format!(
        "security=policy:\"eyJh/b+c==\",signature:{S}/flip/{HANDLE}"
    ));
    assert_eq!(
        c.security.as_ref().map(|s| s.policy.as_str()),
        Some("eyJh/b+c==")
    );
    assert_eq!(names(&c), ["flip"]);
}
