use std::fmt;

use base64::Engine;
use serde::{de, Deserialize, Deserializer};

/// Avatar bytes as a request carries them: the spec's array of uint8, or (our extension,
/// four times smaller on the wire) a base64 string.
#[derive(Clone, PartialEq, Eq)]
pub struct AvatarInput(pub Vec<u8>);

impl fmt::Debug for AvatarInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AvatarInput({} bytes)", self.0.len())
    }
}

impl<'de> Deserialize<'de> for AvatarInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = AvatarInput;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of bytes (integers 0-255) or a base64 string")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<AvatarInput, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(byte) = seq.next_element::<u8>()? {
                    bytes.push(byte);
                }
                Ok(AvatarInput(bytes))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<AvatarInput, E> {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map(AvatarInput)
                    .map_err(|e| E::custom(format!("avatar is not valid base64: {e}")))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// An image we accept as an avatar: PNG, JPEG, GIF or WebP, recognised from its header (the
/// client's word for the type is not trusted), with readable dimensions of at most
/// [`Avatar::MAX_DIMENSION`] pixels a side, and its size capped.
#[derive(Clone, PartialEq, Eq)]
pub struct Avatar {
    bytes: Vec<u8>,
    content_type: &'static str,
}

impl fmt::Debug for Avatar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Avatar({}, {} bytes)", self.content_type, self.bytes.len())
    }
}

impl Avatar {
    /// Widest and tallest avatar accepted, in pixels.
    pub const MAX_DIMENSION: usize = 4096;

    pub fn parse(input: AvatarInput, max_bytes: usize) -> Result<Self, String> {
        let bytes = input.0;
        if bytes.len() > max_bytes {
            return Err(format!("avatar is {} bytes; at most {max_bytes} are allowed", bytes.len()));
        }
        let content_type = read_header(&bytes)?;
        Ok(Self { bytes, content_type })
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn content_type(&self) -> &'static str {
        self.content_type
    }
    pub fn file_name(&self) -> &'static str {
        match self.content_type {
            "image/png" => "avatar.png",
            "image/jpeg" => "avatar.jpg",
            "image/gif" => "avatar.gif",
            _ => "avatar.webp",
        }
    }
}

const NOT_AN_IMAGE: &str = "avatar must be a PNG, JPEG, GIF or WebP image";

/// The image's type from its signature and header structure, and its dimensions from the
/// header (read with `imagesize`, nothing is decoded).
fn read_header(bytes: &[u8]) -> Result<&'static str, String> {
    let content_type = sniff_image(bytes).ok_or_else(|| NOT_AN_IMAGE.to_owned())?;
    let size = imagesize::blob_size(bytes)
        .map_err(|e| format!("avatar is not a readable {}: {e}", &content_type["image/".len()..]))?;
    let (width, height) = (size.width, size.height);
    if width == 0 || height == 0 {
        return Err(format!("avatar is {width}×{height} pixels; an image needs at least one pixel"));
    }
    let max = Avatar::MAX_DIMENSION;
    if width > max || height > max {
        return Err(format!("avatar is {width}×{height} pixels; at most {max}×{max} are allowed"));
    }
    Ok(content_type)
}

/// The image type by its signature and the structure right after it: a PNG's first chunk is
/// its header (`IHDR`), a GIF names its version, a WebP's first chunk is a VP8 bitstream.
fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.get(12..16) == Some(b"IHDR") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 16
        && &bytes[0..4] == b"RIFF"
        && &bytes[8..12] == b"WEBP"
        && matches!(&bytes[12..16], b"VP8 " | b"VP8L" | b"VP8X")
    {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = include_bytes!("testdata/1x1.png");
    const JPEG: &[u8] = include_bytes!("testdata/1x1.jpg");
    const GIF: &[u8] = include_bytes!("testdata/1x1.gif");
    const WEBP_LOSSLESS: &[u8] = include_bytes!("testdata/1x1-lossless.webp");
    const WEBP_LOSSY: &[u8] = include_bytes!("testdata/2x3-lossy.webp");
    const WEBP_EXTENDED: &[u8] = include_bytes!("testdata/2x3-extended.webp");
    const PNG_TOO_WIDE: &[u8] = include_bytes!("testdata/4097x1.png");
    const GIF_TOO_TALL: &[u8] = include_bytes!("testdata/1x5000.gif");

    fn parse(bytes: &[u8]) -> Result<Avatar, String> {
        Avatar::parse(AvatarInput(bytes.to_vec()), 10_000)
    }

    #[test]
    fn real_images_are_recognised_from_their_headers() {
        for (bytes, content_type) in [
            (PNG, "image/png"),
            (JPEG, "image/jpeg"),
            (GIF, "image/gif"),
            (WEBP_LOSSLESS, "image/webp"),
            (WEBP_LOSSY, "image/webp"),
            (WEBP_EXTENDED, "image/webp"),
        ] {
            let avatar = parse(bytes).unwrap_or_else(|e| panic!("{content_type}: {e}"));
            assert_eq!(avatar.content_type(), content_type);
        }
    }

    #[test]
    fn magic_bytes_alone_are_not_an_image() {
        for fake in [
            &b"\x89PNG\r\n\x1a\n...."[..],
            b"RIFF\x10\x00\x00\x00WEBPVP8 ",
            b"GIF89a..",
            &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0],
            b"GIF8 not really",
            b"<svg></svg>",
            b"",
            &PNG[..20],
            &JPEG[..JPEG.len() / 2],
        ] {
            assert!(parse(fake).is_err(), "{fake:?} was accepted");
        }
    }

    #[test]
    fn dimensions_are_bounded() {
        let err = parse(PNG_TOO_WIDE).unwrap_err();
        assert!(err.contains("4097×1") && err.contains("4096×4096"), "{err}");
        assert!(parse(GIF_TOO_TALL).unwrap_err().contains("1×5000"));
        // A PNG header claiming no pixels at all.
        let mut empty = PNG.to_vec();
        empty[16..24].fill(0);
        assert!(parse(&empty).unwrap_err().contains("0×0"));
    }

    #[test]
    fn avatars_over_the_cap_are_refused() {
        let err = Avatar::parse(AvatarInput(PNG.to_vec()), PNG.len() - 1).unwrap_err();
        assert!(err.contains(&format!("at most {}", PNG.len() - 1)), "{err}");
        assert!(Avatar::parse(AvatarInput(PNG.to_vec()), PNG.len()).is_ok());
    }

    #[test]
    fn avatar_input_reads_byte_arrays_and_base64() {
        let from_array: AvatarInput = serde_json::from_str("[1, 2, 255]").unwrap();
        assert_eq!(from_array.0, vec![1, 2, 255]);
        let from_base64: AvatarInput = serde_json::from_str("\"AQL/\"").unwrap();
        assert_eq!(from_base64.0, vec![1, 2, 255]);
        assert!(serde_json::from_str::<AvatarInput>("[256]").is_err());
        assert!(serde_json::from_str::<AvatarInput>("[-1]").is_err());
        assert!(serde_json::from_str::<AvatarInput>("\"***\"").is_err());
    }
}
