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

/// An image we accept as a room avatar: its type sniffed from the bytes, its size capped.
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
    pub fn parse(input: AvatarInput, max_bytes: usize) -> Result<Self, String> {
        let bytes = input.0;
        if bytes.len() > max_bytes {
            return Err(format!("avatar is {} bytes; at most {max_bytes} are allowed", bytes.len()));
        }
        let content_type =
            sniff_image(&bytes).ok_or_else(|| "avatar must be a PNG, JPEG, GIF or WebP image".to_owned())?;
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

/// The image type by its magic bytes; the client's word for it is not trusted.
fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_types_are_sniffed_from_the_bytes() {
        let png = b"\x89PNG\r\n\x1a\n....".to_vec();
        assert_eq!(Avatar::parse(AvatarInput(png), 100).unwrap().content_type(), "image/png");
        let webp = b"RIFF\x10\x00\x00\x00WEBPVP8 ".to_vec();
        assert_eq!(Avatar::parse(AvatarInput(webp), 100).unwrap().content_type(), "image/webp");
        let gif = b"GIF89a..".to_vec();
        assert_eq!(Avatar::parse(AvatarInput(gif), 100).unwrap().content_type(), "image/gif");
        let jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 0];
        assert_eq!(Avatar::parse(AvatarInput(jpeg), 100).unwrap().content_type(), "image/jpeg");
        assert!(Avatar::parse(AvatarInput(b"<svg></svg>".to_vec()), 100).is_err());
        assert!(Avatar::parse(AvatarInput(Vec::new()), 100).is_err());
    }

    #[test]
    fn avatars_over_the_cap_are_refused() {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.resize(101, 0);
        let err = Avatar::parse(AvatarInput(png), 100).unwrap_err();
        assert!(err.contains("at most 100"), "{err}");
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
