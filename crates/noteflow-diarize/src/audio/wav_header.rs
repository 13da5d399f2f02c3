//! The WAV header check that runs before symphonia sees the bytes (see the module docs on
//! robustness), and the names of WAV codecs symphonia cannot decode.

use crate::audio::error::AudioError;
use crate::audio::limits::{MAX_SOURCE_RATE, MIN_SOURCE_RATE};

/// How much of the start of a file the WAV pre-check looks at.
pub(super) const HEADER_PEEK: usize = 64 * 1024;

/// Rejects WAV headers that make symphonia 0.5 panic or misbehave, with a precise error, and
/// returns the WAV format tag (so that an unsupported WAV codec can be named).
///
/// A 0 Hz `fmt ` chunk panics inside symphonia's `TimeBase::new`; 0 channels, a 0-byte frame
/// or a missing `fmt ` chunk are reported here too because the messages are clearer than
/// symphonia's. Anything this cannot parse is left to symphonia.
pub(super) fn precheck_wav_header(head: &[u8]) -> Result<Option<u16>, AudioError> {
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Ok(None);
    }
    let u16_at = |p: usize| head.get(p..p + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |p: usize| {
        head.get(p..p + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut pos = 12usize;
    while let (Some(id), Some(len)) = (head.get(pos..pos + 4), u32_at(pos + 4)) {
        let body = pos + 8;
        match id {
            b"fmt " => {
                let (Some(tag), Some(channels), Some(rate), Some(block_align)) = (
                    u16_at(body),
                    u16_at(body + 2),
                    u32_at(body + 4),
                    u16_at(body + 12),
                ) else {
                    return Ok(None);
                };
                if !(MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&rate) {
                    return Err(AudioError::InvalidSampleRate(rate));
                }
                if channels == 0 {
                    return Err(AudioError::Corrupt(
                        "the WAV header declares 0 channels".into(),
                    ));
                }
                if block_align == 0 {
                    return Err(AudioError::Corrupt(
                        "the WAV header declares 0 bytes per sample frame".into(),
                    ));
                }
                return Ok(Some(tag));
            }
            b"data" => {
                return Err(AudioError::Corrupt(
                    "the WAV file has no format chunk before its audio data".into(),
                ))
            }
            _ => {
                // Chunks are padded to an even length.
                let padded = (len as usize).checked_add(len as usize & 1);
                match padded.and_then(|l| body.checked_add(l)) {
                    Some(next) => pos = next,
                    None => return Ok(None),
                }
            }
        }
    }
    Ok(None)
}

/// Names a WAV format tag that symphonia cannot decode.
pub(super) fn wav_codec_name(tag: u16) -> String {
    let name = match tag {
        0x0002 => "Microsoft ADPCM",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG audio",
        0x0055 => "MP3",
        0x0160..=0x0163 => "WMA",
        0x0401 => "Intel Music Coder",
        _ => "",
    };
    if name.is_empty() {
        format!("with WAV format tag {tag:#06x}")
    } else {
        format!("{name} (WAV format tag {tag:#06x})")
    }
}

#[cfg(test)]
mod tests {
    use crate::audio::test_support::*;
    use crate::audio::{decode_bytes, AudioError};

    #[test]
    fn zero_and_absurd_sample_rates_are_rejected() {
        for rate in [0u32, 500, 2_000_000] {
            let mut bytes = wav_header(rate, 1, Fmt::S16, 3200);
            bytes.resize(44 + 3200, 0);
            let err = decode_bytes(bytes, Some("wav")).unwrap_err();
            assert!(
                matches!(err, AudioError::InvalidSampleRate(r) if r == rate),
                "{err:?}"
            );
        }
    }

    #[test]
    fn zero_channels_and_zero_block_align_are_corrupt() {
        let mut bytes = wav_header(16_000, 0, Fmt::S16, 3200);
        bytes.resize(44 + 3200, 0);
        let err = decode_bytes(bytes, None).unwrap_err();
        assert!(matches!(err, AudioError::Corrupt(_)), "{err:?}");

        let mut bytes = wav_header(16_000, 1, Fmt::S16, 3200);
        bytes[32..34].copy_from_slice(&0u16.to_le_bytes());
        bytes.resize(44 + 3200, 0);
        let err = decode_bytes(bytes, None).unwrap_err();
        assert!(matches!(err, AudioError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn unsupported_codec_in_wav_is_named() {
        // IMA ADPCM (format tag 0x11): a valid WAV whose codec is not compiled in.
        let mut h = Vec::new();
        h.extend(b"RIFF");
        h.extend((4u32 + 28 + 8 + 8 + 2560).to_le_bytes());
        h.extend(b"WAVEfmt ");
        h.extend(20u32.to_le_bytes());
        h.extend(0x11u16.to_le_bytes()); // format tag
        h.extend(1u16.to_le_bytes()); // channels
        h.extend(16_000u32.to_le_bytes());
        h.extend(8_000u32.to_le_bytes());
        h.extend(256u16.to_le_bytes()); // block align
        h.extend(4u16.to_le_bytes()); // bits per sample
        h.extend(2u16.to_le_bytes()); // extra size
        h.extend(505u16.to_le_bytes()); // frames per block
        h.extend(b"data");
        h.extend(2560u32.to_le_bytes());
        h.resize(h.len() + 2560, 0);
        let err = decode_bytes(h, Some("wav")).unwrap_err();
        assert!(
            matches!(&err, AudioError::UnsupportedCodec { codec } if codec.contains("ADPCM")),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_wav_codec_is_named_and_missing_fmt_is_corrupt() {
        // GSM 6.10 (format tag 0x31), common from old dictaphones.
        let mut bytes = wav_header(8_000, 1, Fmt::S16, 3200);
        bytes[20..22].copy_from_slice(&0x31u16.to_le_bytes());
        bytes.resize(44 + 3200, 0);
        let err = decode_bytes(bytes, Some("wav")).unwrap_err();
        assert!(
            matches!(&err, AudioError::UnsupportedCodec { codec } if codec.contains("GSM")),
            "{err:?}"
        );
        // The `fmt ` chunk renamed: the data chunk comes first.
        let mut bytes = wav_header(8_000, 1, Fmt::S16, 3200);
        bytes[12..16].copy_from_slice(b"junk");
        bytes.resize(44 + 3200, 0);
        let err = decode_bytes(bytes, Some("wav")).unwrap_err();
        assert!(matches!(err, AudioError::Corrupt(_)), "{err:?}");
    }
}
