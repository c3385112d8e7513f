//! Task names Filestack knows (protocol reference, section 6.2), whether or
//! not the emulator implements them.

/// Every task name an official SDK can emit. Used to tell an API key from a
/// task and to say "not supported" rather than "unknown".
pub(crate) const FILESTACK_TASKS: &[&str] = &[
    "animate",
    "ascii",
    "auto_image",
    "blackwhite",
    "blur",
    "blur_faces",
    "border",
    "cache",
    "circle",
    "collage",
    "compress",
    "content",
    "crop",
    "crop_faces",
    "debug",
    "detect_faces",
    "doc_detection",
    "doc_to_images",
    "enhance",
    "fallback",
    "flip",
    "flop",
    "imagesize",
    "metadata",
    "minify_css",
    "minify_js",
    "modulate",
    "monochrome",
    "negative",
    "no_metadata",
    "ocr",
    "oil_paint",
    "output",
    "partial_blur",
    "partial_pixelate",
    "pdfconvert",
    "pdfcreate",
    "pdfinfo",
    "pixelate",
    "pixelate_faces",
    "pjpg",
    "polaroid",
    "qr",
    "quality",
    "redeye",
    "resize",
    "rotate",
    "round_corners",
    "rounded_corners",
    "run_workflow",
    "security",
    "sepia",
    "sfw",
    "shadow",
    "sharpen",
    "slide",
    "smart_crop",
    "store",
    "tags",
    "text_sentiment",
    "torn_edges",
    "upscale",
    "urlscreenshot",
    "video_convert",
    "video_playlist",
    "vignette",
    "watermark",
    "workflow_status",
    "zip",
];

/// Whether `name` is a Filestack task name.
pub(crate) fn is_filestack_task(name: &str) -> bool {
    FILESTACK_TASKS.binary_search(&name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::{FILESTACK_TASKS, is_filestack_task};

    #[test]
    fn the_task_list_is_sorted_so_lookups_work() {
        assert!(FILESTACK_TASKS.windows(2).all(|w| w[0] < w[1]));
        assert!(is_filestack_task("watermark"));
        assert!(is_filestack_task("zip"));
        assert!(!is_filestack_task("TESTAPIKEY0000000000000"));
    }
}
