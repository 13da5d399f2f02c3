//! The public entry points and the packet loop: symphonia demuxes and decodes, each packet is
//! down-mixed and pushed through the resampler, and damage is counted and concealed.

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, Track};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::audio::audio16k::Audio16k;
use crate::audio::downmix::downmix;
use crate::audio::error::AudioError;
use crate::audio::limits::{output_len, MAX_SAMPLES, MIN_SAMPLES};
use crate::audio::report::DecodeReport;
use crate::audio::resample::Pipeline;
use crate::audio::track::{codec_name, select_track, validate_rate, TrackState};
use crate::audio::wav_header::{precheck_wav_header, wav_codec_name, HEADER_PEEK};
use crate::panic::panic_message;

/// Most silence inserted for one undecodable packet: the largest packet any supported codec
/// can have (FLAC's 65535-frame block; MP3 has 1152, Vorbis at most 8192).
const MAX_CONCEALED_FRAMES: u64 = 65_536;

/// Longest timestamp jump filled with silence; a larger jump is more likely a corrupt
/// timestamp than lost audio.
const MAX_GAP_SECS: u64 = 10;

/// Consecutive container errors after which decoding stops (keeping what was decoded).
const MAX_CONSECUTIVE_CONTAINER_ERRORS: u32 = 32;

/// Decodes an audio file to mono 16 kHz. See [`decode_file_with_report`].
pub fn decode_file(path: &Path) -> Result<Audio16k, AudioError> {
    decode_file_with_report(path).map(|(audio, _)| audio)
}

/// Decodes in-memory audio (e.g. an upload) to mono 16 kHz. `extension_hint` (with or without
/// the dot) is only a hint: the format is detected from the content. Takes any owned byte buffer
/// (`Vec<u8>`, `Arc<[u8]>`, ...), so a shared upload need not be copied to be checked.
pub fn decode_bytes<B>(bytes: B, extension_hint: Option<&str>) -> Result<Audio16k, AudioError>
where
    B: AsRef<[u8]> + Send + Sync + 'static,
{
    decode_bytes_with_report(bytes, extension_hint).map(|(audio, _)| audio)
}

/// Like [`decode_file`], also returning a [`DecodeReport`]. The file is streamed, never read
/// whole.
pub fn decode_file_with_report(path: &Path) -> Result<(Audio16k, DecodeReport), AudioError> {
    let what = path.display().to_string();
    let io_err = |source| AudioError::Io {
        what: what.clone(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if len == 0 {
        return Err(AudioError::Empty);
    }
    let mut head = Vec::with_capacity(HEADER_PEEK);
    (&mut file)
        .take(HEADER_PEEK as u64)
        .read_to_end(&mut head)
        .map_err(io_err)?;
    let wav_tag = precheck_wav_header(&head)?;
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let ext = path.extension().and_then(|e| e.to_str());
    decode_source(Box::new(file), len, ext, wav_tag, &what)
}

/// Like [`decode_bytes`], also returning a [`DecodeReport`].
pub fn decode_bytes_with_report<B>(
    bytes: B,
    extension_hint: Option<&str>,
) -> Result<(Audio16k, DecodeReport), AudioError>
where
    B: AsRef<[u8]> + Send + Sync + 'static,
{
    let slice = bytes.as_ref();
    if slice.is_empty() {
        return Err(AudioError::Empty);
    }
    let wav_tag = precheck_wav_header(&slice[..slice.len().min(HEADER_PEEK)])?;
    let len = slice.len() as u64;
    decode_source(
        Box::new(Cursor::new(bytes)),
        len,
        extension_hint,
        wav_tag,
        "in-memory audio",
    )
}

/// Runs the streaming decode, converting any panic inside symphonia or rubato into
/// [`AudioError::DecoderPanic`].
fn decode_source(
    source: Box<dyn MediaSource>,
    source_len: u64,
    extension_hint: Option<&str>,
    wav_tag: Option<u16>,
    what: &str,
) -> Result<(Audio16k, DecodeReport), AudioError> {
    // All state touched by the closure is created inside it and dropped on unwind, so
    // asserting unwind safety cannot expose a half-updated value.
    let result = catch_unwind(AssertUnwindSafe(|| {
        decode_stream(source, source_len, extension_hint, wav_tag, what)
    }));
    match result {
        Ok(r) => r,
        Err(payload) => {
            let msg = panic_message(&*payload);
            tracing::error!(%msg, "audio decoder panicked; input rejected");
            Err(AudioError::DecoderPanic(msg))
        }
    }
}

fn decode_stream(
    source: Box<dyn MediaSource>,
    source_len: u64,
    extension_hint: Option<&str>,
    wav_tag: Option<u16>,
    what: &str,
) -> Result<(Audio16k, DecodeReport), AudioError> {
    let hint_ext = extension_hint
        .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
        .filter(|e| !e.is_empty());
    let mut hint = Hint::new();
    if let Some(ext) = &hint_ext {
        hint.with_extension(ext);
    }
    let mss = MediaSourceStream::new(source, Default::default());
    // Gapless mode trims the MP3 encoder delay/padding using the LAME header, so the audio
    // lines up in time with the original recording.
    let format_opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, mss, &format_opts, &MetadataOptions::default())
        .map_err(|e| match e {
            SymphoniaError::Unsupported(_) => match wav_tag {
                // A WAV file whose format tag symphonia does not know: name the codec.
                Some(tag) => AudioError::UnsupportedCodec {
                    codec: wav_codec_name(tag),
                },
                None => AudioError::UnsupportedFormat { hint: hint_ext },
            },
            SymphoniaError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                AudioError::Truncated("the file ends inside its header".into())
            }
            SymphoniaError::IoError(source) => AudioError::Io {
                what: what.to_owned(),
                source,
            },
            other => AudioError::Corrupt(format!("invalid header ({other})")),
        })?;
    let mut reader = probed.format;

    let first_track = select_track(reader.as_ref())?;
    let mut track = TrackState::new(reader.as_ref())?;
    let mut pipeline = Pipeline::new(estimate_output_len(&first_track, source_len), MAX_SAMPLES);
    let mut mono: Vec<f32> = Vec::new();
    let mut report = DecodeReport {
        codec: codec_name(first_track.codec_params.codec),
        source_rate: 0,
        source_channels: 0,
        source_frames: 0,
        skipped_packets: 0,
        container_errors: 0,
        gaps: 0,
        concealed_frames: 0,
        truncated: false,
    };
    let mut last_packet_error = String::new();
    let mut container_error: Option<String> = None;
    let mut short_tracks = 0usize;
    let mut consecutive_container_errors = 0u32;
    // Set when decoding stopped on an unrecoverable container error.
    let mut gave_up = false;
    // Chained Ogg streams announce each new logical stream with `ResetRequired`; a bound
    // stops a malicious file from making us rebuild decoders forever.
    let mut resets_left = 64u32;

    loop {
        let packet = match reader.next_packet() {
            Ok(p) => {
                consecutive_container_errors = 0;
                p
            }
            // symphonia 0.5 signals the end of the stream with UnexpectedEof; a truncated file
            // ends the same way, which is detected below from the announced frame count.
            Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(SymphoniaError::IoError(source)) => {
                return Err(AudioError::Io {
                    what: what.to_owned(),
                    source,
                })
            }
            Err(SymphoniaError::ResetRequired) if resets_left > 0 => {
                resets_left -= 1;
                short_tracks +=
                    usize::from(track.expected_frames.is_some_and(|n| track.frames < n));
                track = TrackState::new(reader.as_ref())?;
                continue;
            }
            // A damaged container unit (e.g. an Ogg page failing its CRC): the readers
            // resynchronise on the next unit, so carry on, but not forever.
            Err(SymphoniaError::DecodeError(e))
                if consecutive_container_errors < MAX_CONSECUTIVE_CONTAINER_ERRORS =>
            {
                consecutive_container_errors += 1;
                report.container_errors += 1;
                container_error = Some(e.to_owned());
                tracing::debug!(error = %e, "skipping damaged container data");
                continue;
            }
            Err(e) => {
                container_error = Some(e.to_string());
                gave_up = true;
                break;
            }
        };
        if packet.track_id() != track.id {
            continue;
        }
        // Container readers skip damaged data silently (an Ogg page failing its checksum, a
        // FLAC frame failing its CRC); the packet timestamps then jump forward by the lost
        // audio. Silence in its place keeps later timestamps right. Jumps are measured
        // packet to packet, not against the decoded count, because some streams' timestamps
        // carry a constant offset; backward steps (seen at the start of some Vorbis
        // streams) are ignored, and jumps over MAX_GAP_SECS are taken for corrupt timestamps.
        if let (Some(expected), Some(rate), true) = (track.next_ts, track.rate, track.ts_in_frames)
        {
            let gap = packet.ts().saturating_sub(expected);
            if gap > 0 && gap <= u64::from(rate) * MAX_GAP_SECS {
                report.gaps += 1;
                conceal(&mut track, gap, &mut pipeline, &mut mono, &mut report)?;
            }
        }
        track.next_ts = Some(packet.ts().saturating_add(packet.dur()));
        let decoded = match track.decoder.decode(&packet) {
            Ok(buf) => buf,
            Err(e) => {
                // Skip the bad packet like a player would, but put silence of the packet's
                // duration in its place: diarization timestamps after the damage must stay
                // right. The duration is capped so a lying packet cannot inflate the output.
                if let SymphoniaError::ResetRequired = e {
                    track.decoder.reset();
                }
                report.skipped_packets += 1;
                last_packet_error = e.to_string();
                tracing::debug!(error = %e, "replacing an undecodable audio packet with silence");
                let n = packet.dur().min(MAX_CONCEALED_FRAMES);
                conceal(&mut track, n, &mut pipeline, &mut mono, &mut report)?;
                continue;
            }
        };
        let spec = *decoded.spec();
        let mut frames = decoded.frames();
        if let Some(cap) = track.frame_cap {
            frames =
                frames.min(usize::try_from(cap.saturating_sub(track.frames)).unwrap_or(usize::MAX));
        }
        if frames == 0 {
            continue;
        }
        validate_rate(spec.rate)?;
        let channels = spec.channels.count();
        if channels == 0 {
            return Err(AudioError::Corrupt("a packet has 0 channels".into()));
        }
        downmix(&decoded, &mut mono);
        mono.truncate(frames);
        if let Some(i) = mono.iter().position(|x| !x.is_finite()) {
            return Err(AudioError::NonFiniteSamples {
                at_secs: (report.source_frames + i as u64) as f64 / f64::from(spec.rate),
            });
        }
        pipeline.push(spec.rate, &mono)?;
        track.rate = Some(spec.rate);
        track.frames += frames as u64;
        report.source_frames += frames as u64;
        report.source_rate = spec.rate;
        report.source_channels = channels;
    }
    short_tracks += usize::from(track.expected_frames.is_some_and(|n| track.frames < n));

    if report.source_frames == 0 {
        return Err(if report.skipped_packets > 0 {
            AudioError::Undecodable {
                failed_packets: report.skipped_packets,
                last_error: last_packet_error,
            }
        } else if let Some(e) = container_error {
            AudioError::Corrupt(e)
        } else if let Some(n) = track.expected_frames.filter(|&n| n > 0) {
            AudioError::Truncated(format!(
                "the header announces {n} sample frames but the file ends before the first one"
            ))
        } else {
            AudioError::NoAudio
        });
    }

    report.truncated = short_tracks > 0 || gave_up;
    if report.truncated {
        tracing::warn!(
            decoded_frames = report.source_frames,
            announced_frames = ?track.expected_frames,
            container_error = ?container_error,
            "audio stream ended early; using the audio decoded up to that point"
        );
    }
    if report.skipped_packets > 0 {
        tracing::warn!(
            skipped = report.skipped_packets,
            last_error = %last_packet_error,
            "skipped undecodable audio packets"
        );
    }

    let samples = pipeline.finish()?;
    if samples.len() < MIN_SAMPLES {
        return Err(AudioError::TooShort {
            samples: samples.len(),
        });
    }
    Ok((Audio16k::from_i16_16k(samples), report))
}

/// Appends up to `frames` source frames of silence for lost audio (no-op while the rate is
/// unknown).
fn conceal(
    track: &mut TrackState,
    frames: u64,
    pipeline: &mut Pipeline,
    scratch: &mut Vec<f32>,
    report: &mut DecodeReport,
) -> Result<(), AudioError> {
    let Some(rate) = track.rate else {
        return Ok(());
    };
    let mut n = frames;
    if let Some(cap) = track.frame_cap {
        n = n.min(cap.saturating_sub(track.frames));
    }
    // Silence may not outweigh the real audio by more than MAX_GAP_SECS: garbage that yields
    // one good packet among thousands of failing ones must not become hours of silence.
    let budget = (report.source_frames + u64::from(rate) * MAX_GAP_SECS)
        .saturating_sub(report.concealed_frames);
    n = n.min(budget);
    if n == 0 {
        return Ok(());
    }
    scratch.clear();
    scratch.resize(usize::try_from(n).unwrap_or(0), 0.0);
    pipeline.push(rate, scratch)?;
    track.frames += n;
    report.concealed_frames += n;
    Ok(())
}

/// Expected number of output samples from the header, used only to reserve the output buffer
/// once (avoiding the 2-3x transient of `Vec` doubling on long meetings). A header can lie, so
/// the estimate is ignored when it implies an implausible compression ratio for the file size.
fn estimate_output_len(track: &Track, source_len: u64) -> usize {
    let params = &track.codec_params;
    let (Some(frames), Some(rate)) = (params.n_frames, params.sample_rate) else {
        return 0;
    };
    if rate == 0 {
        return 0;
    }
    let est = output_len(frames, rate);
    // Real recordings do not decode to more than 32 output samples per input byte (MP3 at
    // 8 kbit/s gives 16); a larger estimate is a lying header, and reserving it would waste
    // address space.
    let plausible = source_len.saturating_mul(32).saturating_add(1 << 20);
    if est > plausible {
        return 0;
    }
    usize::try_from(est).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::test_support::*;

    #[test]
    fn empty_bytes_are_rejected() {
        assert!(matches!(
            decode_bytes(Vec::new(), Some("wav")),
            Err(AudioError::Empty)
        ));
    }

    #[test]
    fn empty_and_missing_files_are_rejected() {
        let dir = std::env::temp_dir().join(format!("audio-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.wav");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(decode_file(&empty), Err(AudioError::Empty)));
        let missing = dir.join("missing.wav");
        let err = decode_file(&missing).unwrap_err();
        assert!(matches!(err, AudioError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("missing.wav"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn text_file_named_wav_is_unsupported() {
        let text = b"Minutes of the meeting\nAlice: hello\nBob: hi\n".repeat(50);
        let err = decode_bytes(text, Some(".WAV")).unwrap_err();
        assert!(
            matches!(&err, AudioError::UnsupportedFormat { hint: Some(h) } if h == "wav"),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("not a recognised audio format"),
            "{err}"
        );
    }

    #[test]
    fn one_sample_wav_is_too_short() {
        let bytes = wav(16_000, 1, Fmt::S16, 1, |_, _| 0.5);
        let err = decode_bytes(bytes, None).unwrap_err();
        assert!(
            matches!(err, AudioError::TooShort { samples: 1 }),
            "{err:?}"
        );
        let bytes = wav(44_100, 2, Fmt::S16, 1, |_, _| 0.5);
        let err = decode_bytes(bytes, None).unwrap_err();
        assert!(
            matches!(err, AudioError::TooShort { samples: 0 }),
            "{err:?}"
        );
        // Just under and at the 0.1 s minimum.
        let bytes = wav(16_000, 1, Fmt::S16, MIN_SAMPLES - 1, |_, _| 0.1);
        assert!(matches!(
            decode_bytes(bytes, None),
            Err(AudioError::TooShort { .. })
        ));
        let bytes = wav(16_000, 1, Fmt::S16, MIN_SAMPLES, |_, _| 0.1);
        assert_eq!(decode_bytes(bytes, None).unwrap().len(), MIN_SAMPLES);
    }

    #[test]
    fn nan_and_infinite_float_samples_are_rejected() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for fmt in [Fmt::F32, Fmt::F64] {
                let bytes = wav(16_000, 2, fmt, 16_000, |t, c| {
                    if c == 1 && (t - 0.5).abs() < 1e-9 {
                        bad
                    } else {
                        0.1
                    }
                });
                let err = decode_bytes(bytes, None).unwrap_err();
                let AudioError::NonFiniteSamples { at_secs } = err else {
                    panic!("{err:?}");
                };
                assert!((at_secs - 0.5).abs() < 1e-3, "{at_secs}");
                assert!(err.to_string().contains("NaN"));
            }
        }
    }

    #[test]
    fn truncated_wav_decodes_what_is_there() {
        // The header announces 2 s but only ~1 s follows.
        let full = wav(44_100, 2, Fmt::S16, 88_200, sine(440.0, 0.5));
        let cut = full[..44 + 44_100 * 4 + 3].to_vec();
        let (audio, report) = decode_bytes_with_report(cut, Some("wav")).unwrap();
        assert!(report.truncated);
        // Symphonia reads WAV in packets of 1152 frames; a partial last packet is dropped.
        assert!(report.source_frames <= 44_100 && report.source_frames > 44_100 - 1152);
        let x = to_f32(&audio);
        let f = zero_crossing_freq(&x[800..x.len() - 800]);
        assert!((f - 440.0).abs() < 1.0, "{f}");
    }

    #[test]
    fn header_only_wav_is_truncated_or_empty() {
        let header = wav_header(44_100, 2, Fmt::S16, 176_400);
        let err = decode_bytes(header, Some("wav")).unwrap_err();
        assert!(matches!(err, AudioError::Truncated(_)), "{err:?}");
        assert!(err.to_string().contains("truncated"), "{err}");

        let header = wav_header(44_100, 2, Fmt::S16, 0);
        let err = decode_bytes(header, Some("wav")).unwrap_err();
        assert!(matches!(err, AudioError::NoAudio), "{err:?}");

        // Cut inside the header itself.
        let header = wav_header(44_100, 2, Fmt::S16, 176_400);
        for len in [4, 12, 20, 30, 40] {
            let err = decode_bytes(header[..len].to_vec(), Some("wav")).unwrap_err();
            assert!(
                matches!(
                    err,
                    AudioError::Truncated(_)
                        | AudioError::Corrupt(_)
                        | AudioError::UnsupportedFormat { .. }
                ),
                "len {len}: {err:?}"
            );
        }
    }

    #[test]
    fn symphonia_panics_become_errors() {
        // A `fmt ` chunk declaring 0 Hz makes symphonia 0.5 panic in `TimeBase::new` with an
        // explicit `panic!`, in every build profile. The header check rejects such a chunk when
        // it sees it, but it reads only the first HEADER_PEEK bytes: behind a larger chunk that
        // RIFF readers skip (JUNK, used for alignment), symphonia meets the 0 Hz first, and the
        // panic must come back as an error.
        let mut h = Vec::new();
        h.extend(b"RIFF");
        let junk = HEADER_PEEK as u32;
        h.extend((4 + (8 + junk) + (8 + 16) + (8 + 3200)).to_le_bytes());
        h.extend(b"WAVE");
        h.extend(b"JUNK");
        h.extend(junk.to_le_bytes());
        h.resize(h.len() + junk as usize, 0);
        h.extend(b"fmt ");
        h.extend(16u32.to_le_bytes());
        h.extend(1u16.to_le_bytes()); // PCM
        h.extend(1u16.to_le_bytes()); // channels
        h.extend(0u32.to_le_bytes()); // sample rate: 0 Hz
        h.extend(0u32.to_le_bytes()); // byte rate
        h.extend(2u16.to_le_bytes()); // block align
        h.extend(16u16.to_le_bytes()); // bits per sample
        h.extend(b"data");
        h.extend(3200u32.to_le_bytes());
        h.resize(h.len() + 3200, 0);
        let err = decode_bytes(h, Some("wav")).unwrap_err();
        let expected = "TimeBase cannot have 0 numerator or denominator";
        assert!(
            matches!(&err, AudioError::DecoderPanic(msg) if msg == expected),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "the audio decoder failed on this file (internal error: {expected}); the file is \
                 probably corrupt"
            )
        );

        // IMA ADPCM with a 2-byte block: symphonia 0.5 computes `block_align - 4 * channels`
        // in u16, which panics with overflow checks on (debug builds) and wraps in release.
        // Either way the caller gets an error, never a panic.
        let mut h = Vec::new();
        h.extend(b"RIFF");
        h.extend((4u32 + 28 + 8 + 8 + 64).to_le_bytes());
        h.extend(b"WAVEfmt ");
        h.extend(20u32.to_le_bytes());
        h.extend(0x11u16.to_le_bytes());
        h.extend(1u16.to_le_bytes());
        h.extend(16_000u32.to_le_bytes());
        h.extend(8_000u32.to_le_bytes());
        h.extend(2u16.to_le_bytes()); // block align: too small
        h.extend(4u16.to_le_bytes());
        h.extend(2u16.to_le_bytes());
        h.extend(505u16.to_le_bytes());
        h.extend(b"data");
        h.extend(64u32.to_le_bytes());
        h.resize(h.len() + 64, 0);
        assert!(decode_bytes(h, None).is_err());
    }

    #[test]
    fn random_bytes_are_rejected_without_panicking() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for len in [1usize, 3, 16, 100, 4096, 100_000] {
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let r = decode_bytes(bytes, Some("mp3"));
            assert!(r.is_err(), "random {len} bytes decoded: {r:?}");
        }
    }

    #[test]
    fn mutated_files_never_panic() {
        let wav_bytes = wav(22_050, 2, Fmt::S16, 4_410, sine(440.0, 0.5));
        let inputs = [
            wav_bytes,
            fixture("tone440_44k1_stereo.flac"),
            fixture("tone440_44k1_stereo.mp3"),
            fixture("tone440_48k_mono.ogg"),
        ];
        let mut rng = Rng(42);
        for input in &inputs {
            for round in 0..40 {
                let mut b = input.clone();
                // Corrupt a few bytes, biased towards the header where parsers live.
                for _ in 0..1 + round % 8 {
                    let range = if round % 2 == 0 {
                        b.len().min(256)
                    } else {
                        b.len()
                    };
                    let i = (rng.next() as usize) % range;
                    b[i] = rng.next() as u8;
                }
                if round % 5 == 4 {
                    b.truncate((rng.next() as usize) % b.len());
                }
                let r = decode_bytes(b, None);
                assert!(
                    !matches!(r, Err(AudioError::DecoderPanic(_))),
                    "round {round}: {r:?}"
                );
            }
        }
    }

    // ---- compressed fixtures -----------------------------------------------------------

    #[test]
    fn compressed_fixtures_decode() {
        // (file, hint, codec, source rate, expected amplitude); each fixture is 1 s long. lame's quantiser shrinks the pure
        // MP3 tone to 0.475 (libmad via sox measures the same), so that is its reference; gapless
        // trimming keeps it aligned.
        for (file, hint, codec, rate, amplitude) in [
            ("tone440_44k1_stereo.flac", "flac", "flac", 44_100, 0.5),
            ("tone440_44k1_stereo.mp3", "mp3", "mp3", 44_100, 0.475),
            ("tone440_48k_mono.ogg", "ogg", "vorbis", 48_000, 0.5),
        ] {
            let (audio, report) = decode_bytes_with_report(fixture(file), Some(hint)).unwrap();
            assert_eq!(report.codec, codec, "{file}");
            assert!(!report.truncated, "{file}");
            assert_eq!(
                (report.gaps, report.skipped_packets, report.concealed_frames),
                (0, 0, 0),
                "{file}"
            );
            check_tone(&audio, rate as usize, rate, amplitude, 0.5);
        }
    }

    #[test]
    fn decode_file_streams_from_disk_and_ignores_a_wrong_extension() {
        let path = format!("{FIXTURES}tone440_44k1_stereo.flac");
        let audio = decode_file(Path::new(&path)).unwrap();
        check_tone(&audio, 44_100, 44_100, 0.5, 0.5);
        // Content decides, not the name.
        let audio2 = decode_bytes(fixture("tone440_44k1_stereo.flac"), Some("mp3")).unwrap();
        assert_eq!(audio, audio2);
    }

    #[test]
    fn truncated_compressed_files_decode_up_to_the_cut() {
        // (fixture, kept fraction of the bytes, expected duration range in seconds). The Ogg
        // fixture is noise because a pure tone fits in one Ogg page, and Ogg delivers whole
        // pages only (3.4 KB of its 13.9 KB are headers, then ~1 s per 4.2 KB page).
        for (name, keep, min_secs, max_secs) in [
            ("tone440_44k1_stereo.flac", 0.5, 0.3, 0.7),
            ("tone440_44k1_stereo.mp3", 0.5, 0.3, 0.7),
            ("pinknoise_16k_mono_3s.ogg", 0.7, 0.9, 2.1),
        ] {
            let bytes = fixture(name);
            let cut = bytes[..(bytes.len() as f64 * keep) as usize].to_vec();
            let (audio, report) = decode_bytes_with_report(cut, None).unwrap();
            let secs = audio.duration_secs();
            assert!(secs > min_secs && secs < max_secs, "{name}: {secs} s");
            // Ogg announces no length in its headers: symphonia reads it from the last page,
            // which in a cut file is the last complete one, so the cut goes unnoticed there.
            assert_eq!(report.truncated, !name.ends_with(".ogg"), "{name}");
        }
        // Cut inside the Ogg Vorbis setup header: nothing can be decoded.
        let bytes = fixture("tone440_48k_mono.ogg");
        let err = decode_bytes(bytes[..bytes.len() / 2].to_vec(), None).unwrap_err();
        assert!(matches!(err, AudioError::Truncated(_)), "{err:?}");
    }

    #[test]
    fn pink_noise_ogg_fixture_has_the_right_duration() {
        let (audio, report) =
            decode_bytes_with_report(fixture("pinknoise_16k_mono_3s.ogg"), None).unwrap();
        assert_eq!(audio.len(), 48_000);
        assert_eq!(report.source_rate, 16_000);
        assert!(!report.truncated);
    }

    #[test]
    fn corrupt_mp3_packets_are_replaced_by_silence_keeping_timing() {
        let mut bytes = fixture("tone440_44k1_stereo.mp3");
        // Overwrite the side information (bytes 4..36 after the sync word) of six frames in
        // the middle: the frames still parse, but the decoder rejects them.
        let syncs: Vec<usize> = (0..bytes.len() - 1)
            .filter(|&i| bytes[i] == 0xFF && bytes[i + 1] == 0xFB)
            .collect();
        for &s in &syncs[10..16] {
            bytes[s + 4..s + 36].fill(0xFF);
        }
        let (audio, report) = decode_bytes_with_report(bytes, None).unwrap();
        assert!(report.skipped_packets >= 6, "{report:?}");
        assert_eq!(report.source_frames + report.concealed_frames, 44_100);
        assert!(!report.truncated, "{report:?}");
        assert_eq!(audio.len(), 16_000);
        // After the damage the tone is still where it belongs in time.
        let x = to_f32(&audio);
        let (amp, delay) = sine_fit(&x, 440.0, 10_000, 15_000);
        assert!((amp - 0.475).abs() < 0.01, "{amp}");
        assert!(delay.abs() < 0.5, "{delay}");
    }

    #[test]
    fn damaged_ogg_page_is_skipped_and_its_time_kept() {
        let mut bytes = fixture("pinknoise_16k_mono_3s.ogg");
        let pages: Vec<usize> = (0..bytes.len() - 4)
            .filter(|&i| &bytes[i..i + 4] == b"OggS")
            .collect();
        assert!(pages.len() >= 5, "{pages:?}");
        // Break the checksum of the second audio page.
        bytes[pages[3] + 200] ^= 0x55;
        let (audio, report) = decode_bytes_with_report(bytes, None).unwrap();
        assert_eq!(report.gaps, 1, "{report:?}");
        assert!(report.concealed_frames > 8_000, "{report:?}");
        assert!(!report.truncated, "{report:?}");
        assert_eq!(audio.len(), 48_000);
        let rms = |r: std::ops::Range<usize>| {
            let n = r.len() as f64;
            (audio.samples()[r]
                .iter()
                .map(|&s| f64::from(s).powi(2))
                .sum::<f64>()
                / n)
                .sqrt()
        };
        // Noise before and after the damage, silence where the page was.
        assert!(rms(1_000..10_000) > 1_000.0);
        assert!(rms(42_000..47_000) > 1_000.0);
        let silent = (0..48_000 / 1_600)
            .filter(|i| rms(i * 1_600..(i + 1) * 1_600) < 10.0)
            .count();
        assert!(silent >= 5, "{silent} silent 0.1 s blocks");
    }

    #[test]
    fn corrupt_flac_frame_is_replaced_by_silence_of_its_length() {
        let mut bytes = fixture("tone440_44k1_stereo.flac");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        let (audio, report) = decode_bytes_with_report(bytes, None).unwrap();
        // The reader drops the frame failing its CRC; the timestamp jump restores its time.
        assert_eq!(report.gaps + report.skipped_packets, 1, "{report:?}");
        assert_eq!(report.source_frames + report.concealed_frames, 44_100);
        assert_eq!(audio.len(), 16_000);
        let x = to_f32(&audio);
        let (_, delay) = sine_fit(&x, 440.0, 14_000, 15_500);
        assert!(delay.abs() < 0.5, "{delay}");
    }

    #[test]
    fn chained_ogg_streams_with_different_rates_are_concatenated() {
        // 3 s of 16 kHz noise, then a second logical stream: 1 s of a 48 kHz tone.
        let mut bytes = fixture("pinknoise_16k_mono_3s.ogg");
        bytes.extend(fixture("tone440_48k_mono.ogg"));
        let (audio, report) = decode_bytes_with_report(bytes, Some("ogg")).unwrap();
        assert_eq!(report.source_frames, 48_000 + 48_000);
        assert_eq!(audio.len(), 48_000 + 16_000);
        let x = to_f32(&audio);
        let f = zero_crossing_freq(&x[48_800..63_200]);
        assert!((f - 440.0).abs() < 1.0, "{f}");
    }
}
