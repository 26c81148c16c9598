//! The `Content-Type` of deserialized content: from the file name's extension, else from the
//! first bytes (HTML, XML, images and other magic numbers by Chromium's sniffer, then text or
//! binary by the WHATWG "binary data byte" rule, as Go's `http.DetectContentType` ends).

use mime_sniffer::{HttpRequest, MimeTypeSniffer};

pub(crate) use stargate_protocol::unixfs::export::SNIFF_LEN;

const TEXT: &str = "text/plain; charset=utf-8";
const BINARY: &str = "application/octet-stream";
const SVG: &str = "image/svg+xml";

/// The type a file name's extension names, if any.
pub(crate) fn from_name(name: &str) -> Option<String> {
    let mime = mime_guess::from_path(name).first()?;
    let essence = mime.essence_str();
    // Text is served as UTF-8, as Go's mime table does; HTML's charset is left to the document.
    Some(
        if mime.type_() == mime_guess::mime::TEXT && essence != "text/html" {
            format!("{essence}; charset=utf-8")
        } else {
            essence.to_owned()
        },
    )
}

/// The type of content starting with `head` (up to [`SNIFF_LEN`] bytes are looked at).
pub(crate) fn from_bytes(head: &[u8]) -> String {
    let head = &head[..head.len().min(SNIFF_LEN as usize)];
    let request = HttpRequest {
        content: &head,
        url: &"",
        type_hint: "",
    };
    let sniffed = request.sniff_mime_type().unwrap_or_default();
    let t = match sniffed {
        // An SVG document starts like any XML one.
        "text/xml" | "application/xml" if contains(head, b"<svg") => SVG,
        "" if head.iter().copied().any(is_binary_byte) => BINARY,
        "" if contains(head, b"<svg") => SVG,
        "" => TEXT,
        other => other,
    };
    t.to_owned()
}

/// WHATWG MIME Sniffing §3: bytes that never occur in text.
fn is_binary_byte(b: u8) -> bool {
    matches!(b, 0x00..=0x08 | 0x0B | 0x0E..=0x1A | 0x1C..=0x1F)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_extension() {
        assert_eq!(from_name("index.html").as_deref(), Some("text/html"));
        assert_eq!(
            from_name("a.txt").as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(from_name("x.png").as_deref(), Some("image/png"));
        assert_eq!(from_name("x.zzzz").as_deref(), None);
        assert_eq!(from_name("no-extension"), None);
    }

    #[test]
    fn by_content() {
        assert_eq!(from_bytes(b"hello world\n"), TEXT);
        assert_eq!(from_bytes("über ναι 日本".as_bytes()), TEXT);
        assert_eq!(from_bytes(b""), TEXT);
        assert_eq!(from_bytes(b"  <!DOCTYPE html><p>x"), "text/html");
        assert_eq!(from_bytes(b"<html><body>"), "text/html");
        assert_eq!(from_bytes(b"\x89PNG\r\n\x1a\n0000"), "image/png");
        assert_eq!(from_bytes(b"\xff\xd8\xff\xe0\0\x10JFIF"), "image/jpeg");
        assert_eq!(from_bytes(b"GIF89a...."), "image/gif");
        assert_eq!(from_bytes(b"%PDF-1.5\n"), "application/pdf");
        assert_eq!(from_bytes(b"<svg xmlns=\"x\"></svg>"), "image/svg+xml");
        assert_eq!(from_bytes(b"<?xml version=\"1.0\"?><svg>"), "image/svg+xml");
        assert_eq!(from_bytes(b"\0\x01\x02binary"), BINARY);
        // Only the first SNIFF_LEN bytes count.
        let mut late = vec![b'a'; SNIFF_LEN as usize];
        late.push(0);
        assert_eq!(from_bytes(&late), TEXT);
    }
}
