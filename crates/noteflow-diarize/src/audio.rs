//! Audio decoding for the diarization pipeline: any supported file in, mono 16 kHz out.
//!
//! The segmentation and embedding models both expect mono audio at [`SAMPLE_RATE`], so every
//! input (WAV, FLAC, MP3, Ogg Vorbis; any sample rate and channel count) is decoded with
//! symphonia, down-mixed to mono (mean of the channels) and resampled with rubato's
//! band-limited resamplers.
//!
//! # Memory
//!
//! Decoding is streaming: packets are decoded, down-mixed and resampled one at a time, so the
//! file is never held at its original rate and channel count. What stays in memory is the
//! caller's compressed input (for [`decode_bytes`]), the 16 kHz output stored as `i16`
//! (2 bytes per sample: a 4-hour meeting costs ~460 MB instead of ~920 MB as `f32`) and a few
//! small fixed-size buffers.
//!
//! # Timing
//!
//! Output sample `n` is the input at time `n / 16000` s (within half a sample): the
//! resamplers' delay is removed, MP3 encoder delay and padding are trimmed (gapless mode), and
//! audio lost to damage is replaced by silence of the same length, so diarization timestamps
//! stay right after a damaged stretch. The length is `round(frames * 16000 / rate)`.
//!
//! # Robustness
//!
//! Uploaded files are untrusted. Every failure is an [`AudioError`] that says what is wrong in
//! words a person can act on. Packets that fail to decode are skipped and counted, as players
//! do (and replaced by silence, see above); decoding fails only when nothing at all decodes.
//! [`DecodeReport`] tells the caller about damage in a file that still decoded. Output is
//! capped at [`MAX_DURATION_SECS`] against decompression bombs.
//!
//! symphonia 0.5 can panic on some malformed headers (for example a WAV `fmt ` chunk with a
//! 0 Hz sample rate panics in `TimeBase::new`, an IMA ADPCM block smaller than its header
//! overflows a `u16`). The WAV header is checked before symphonia sees it, and the whole
//! decode runs under `catch_unwind` as a last resort, so that no input can take the process
//! down. This relies on `panic = "unwind"` (the default); the default panic hook still prints
//! the message to stderr.

use std::fmt;
use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rubato::{
    calculate_cutoff, FftFixedInOut, SincFixedIn, SincInterpolationParameters,
    SincInterpolationType, VecResampler, WindowFunction,
};
use symphonia::core::audio::{AudioBuffer, AudioBufferRef, Signal};
use symphonia::core::codecs::{self, CodecType, Decoder, DecoderOptions};
use symphonia::core::conv::IntoSample;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader, Track};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;
use symphonia::core::sample::Sample;

/// Sample rate of every [`Audio16k`]: what the segmentation and embedding models expect.
pub const SAMPLE_RATE: u32 = 16_000;

/// Shortest audio accepted by the decoders: 0.1 s at 16 kHz.
///
/// Anything shorter cannot hold a single word, let alone a speaker turn, and the models'
/// feature extractors need at least a few frames; rejecting it here gives a clear error instead
/// of an empty diarization or an obscure shape error further down.
pub const MIN_SAMPLES: usize = SAMPLE_RATE as usize / 10;

/// Longest audio accepted: 12 hours (1.4 GB as 16 kHz `i16`).
///
/// Compressed formats can expand enormously (a FLAC frame of silence is ~15 bytes for 65535
/// samples), so a small upload could otherwise decode to more audio than memory holds. No
/// meeting is longer; the limit turns such a file into [`AudioError::TooLong`].
pub const MAX_DURATION_SECS: u64 = 12 * 3600;

/// [`MAX_DURATION_SECS`] in 16 kHz samples.
const MAX_SAMPLES: usize = (MAX_DURATION_SECS * SAMPLE_RATE as u64) as usize;

/// Lowest source sample rate accepted. Real recordings start at 8 kHz (telephony); a lower
/// declared rate means a broken header, and resampling from it would need absurd upsampling.
pub const MIN_SOURCE_RATE: u32 = 1_000;

/// Highest source sample rate accepted (1 MHz). Higher declared rates are broken headers.
pub const MAX_SOURCE_RATE: u32 = 1_000_000;

/// i16 full scale used for both directions of the i16 <-> f32 conversion, so that 16-bit
/// 16 kHz input survives a decode bit-exactly (symphonia scales i16 by 1/32768 too).
const I16_SCALE: f32 = 32_768.0;

/// Target FFT block for the synchronous FFT resampler, in input frames. Longer blocks give a
/// longer (sharper) anti-aliasing filter and fewer FFT calls per sample; 2048 keeps the block a
/// few tens of kilobytes.
const FFT_TARGET_BLOCK: usize = 2_048;

/// If the exact rational FFT block for a rate pair would exceed this many input frames (rates
/// like 44 101 Hz whose ratio to 16 kHz has no small denominator), the sinc resampler is used
/// instead: it handles any ratio with fixed, small buffers.
const FFT_MAX_BLOCK: usize = 1 << 16;

/// Most silence inserted for one undecodable packet: the largest packet any supported codec
/// can have (FLAC's 65535-frame block; MP3 has 1152, Vorbis at most 8192).
const MAX_CONCEALED_FRAMES: u64 = 65_536;

/// Longest timestamp jump filled with silence; a larger jump is more likely a corrupt
/// timestamp than lost audio.
const MAX_GAP_SECS: u64 = 10;

/// Consecutive container errors after which decoding stops (keeping what was decoded).
const MAX_CONSECUTIVE_CONTAINER_ERRORS: u32 = 32;

/// Input chunk of the sinc resampler fallback, in frames.
const SINC_CHUNK: usize = 4_096;

/// Why audio could not be decoded. Each message is meant to be shown to the person who
/// uploaded the file.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened or read.
    #[error("cannot read {what}: {source}")]
    Io {
        /// The path, or "in-memory audio".
        what: String,
        #[source]
        source: io::Error,
    },
    /// The input has 0 bytes.
    #[error("the audio file is empty (0 bytes)")]
    Empty,
    /// The content is not a container symphonia recognises (for example a text file named
    /// `.wav`). Detection is by content; the extension is only a hint.
    #[error(
        "the file is not a recognised audio format{}; supported formats are WAV, FLAC, MP3 \
         and Ogg Vorbis",
        .hint.as_deref().map(|h| format!(" (although its name ends in .{h})")).unwrap_or_default()
    )]
    UnsupportedFormat {
        /// The extension hint given by the caller, if any.
        hint: Option<String>,
    },
    /// The container is recognised but its audio codec is not supported (for example Opus in
    /// Ogg or ADPCM in WAV).
    #[error(
        "the audio codec {codec} is not supported; convert the file to WAV, FLAC, MP3 or Ogg \
         Vorbis"
    )]
    UnsupportedCodec {
        /// Human-readable codec name.
        codec: String,
    },
    /// The container holds no audio track.
    #[error("the file contains no audio track")]
    NoAudioTrack,
    /// The declared sample rate is 0 or outside [`MIN_SOURCE_RATE`]..=[`MAX_SOURCE_RATE`].
    #[error(
        "the file declares an invalid sample rate of {0} Hz (supported: {MIN_SOURCE_RATE} to \
         {MAX_SOURCE_RATE} Hz); its header is probably corrupt"
    )]
    InvalidSampleRate(u32),
    /// The header or stream is malformed and nothing usable could be read.
    #[error("the audio file is corrupt: {0}")]
    Corrupt(String),
    /// The file ends before the audio its header announces (for example a WAV header followed
    /// by no data), so nothing could be decoded.
    #[error("the audio file is truncated: {0}")]
    Truncated(String),
    /// Every audio packet failed to decode.
    #[error(
        "none of the {failed_packets} audio packets could be decoded (last error: \
         {last_error}); the file is corrupt"
    )]
    Undecodable {
        /// Number of packets that failed.
        failed_packets: usize,
        /// The last decoder error message.
        last_error: String,
    },
    /// The audio is longer than [`MAX_DURATION_SECS`] (12 h).
    #[error(
        "the audio is longer than the supported maximum of {} hours; split the recording",
        MAX_DURATION_SECS / 3600
    )]
    TooLong,
    /// The file is well-formed but contains zero samples.
    #[error("the file contains no audio samples")]
    NoAudio,
    /// The decoded audio is shorter than [`MIN_SAMPLES`] (0.1 s).
    #[error(
        "the audio is too short: {samples} samples at 16 kHz ({:.3} s); at least {MIN_SAMPLES} \
         samples (0.1 s) are needed",
        *.samples as f64 / f64::from(SAMPLE_RATE)
    )]
    TooShort {
        /// Number of 16 kHz samples decoded.
        samples: usize,
    },
    /// A floating-point file contains NaN or infinite samples (or values beyond the f32
    /// range): it was written by a broken program, and such values would poison every
    /// downstream computation.
    #[error(
        "the audio contains invalid sample values (NaN or infinity) at {at_secs:.3} s; the file \
         was written incorrectly"
    )]
    NonFiniteSamples {
        /// Position of the first bad frame, in seconds from the start.
        at_secs: f64,
    },
    /// The decoding library panicked on this input (caught; see the module docs).
    #[error(
        "the audio decoder failed on this file (internal error: {0}); the file is probably corrupt"
    )]
    DecoderPanic(String),
    /// A resampler could not be built or failed; this indicates a bug, not a bad file.
    #[error("internal resampling error: {0}")]
    Resample(String),
}

/// Mono audio at [`SAMPLE_RATE`], stored as `i16` to halve the memory of long meetings.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Audio16k {
    samples: Vec<i16>,
}

impl fmt::Debug for Audio16k {
    // Printing hundreds of millions of samples helps nobody.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audio16k")
            .field("len", &self.samples.len())
            .field("duration_secs", &self.duration_secs())
            .finish()
    }
}

impl Audio16k {
    /// Builds audio from 16 kHz `f32` samples (tests, synthesised input). Values are clamped to
    /// [-1, 1]; NaN becomes 0.
    pub fn from_f32_16k(samples: &[f32]) -> Self {
        Self {
            samples: samples.iter().map(|&x| f32_to_i16(x)).collect(),
        }
    }

    /// Wraps 16 kHz `i16` samples without copying.
    pub fn from_i16_16k(samples: Vec<i16>) -> Self {
        Self { samples }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(SAMPLE_RATE)
    }

    /// The raw samples.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Consumes the audio, returning the raw samples.
    pub fn into_samples(self) -> Vec<i16> {
        self.samples
    }

    /// Fills `out` with the samples from `start` on, scaled to [-1, 1), zero-padding past the
    /// end. Models consume fixed-size `f32` windows; converting one window at a time keeps the
    /// whole recording in `i16`.
    pub fn copy_window_f32(&self, start: usize, out: &mut [f32]) {
        let available = self.samples.get(start..).unwrap_or(&[]);
        let n = available.len().min(out.len());
        let (head, tail) = out.split_at_mut(n);
        for (o, &s) in head.iter_mut().zip(available) {
            *o = f32::from(s) * (1.0 / I16_SCALE);
        }
        tail.fill(0.0);
    }
}

/// Facts about a decode, for logs and for telling a user that their file was damaged even
/// though it produced audio.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeReport {
    /// Codec name, e.g. "pcm_s16le", "flac", "mp3", "vorbis".
    pub codec: String,
    /// Sample rate of the source (of its last segment if it changed mid-stream).
    pub source_rate: u32,
    /// Channel count of the source (of its last packet).
    pub source_channels: usize,
    /// Frames decoded at the source rate (excluding concealed frames).
    pub source_frames: u64,
    /// Packets that failed to decode. Each was replaced by silence of its duration (when the
    /// sample rate was known), so that later audio keeps its timestamps.
    pub skipped_packets: usize,
    /// Container errors skipped (the reader resynchronised after them).
    pub container_errors: usize,
    /// Forward jumps in the packet timestamps: audio lost in damaged container data that the
    /// reader skipped (e.g. an Ogg page failing its checksum). Each was filled with silence.
    pub gaps: usize,
    /// Source frames of silence inserted for skipped packets and timestamp gaps (not in
    /// `source_frames`).
    pub concealed_frames: u64,
    /// Fewer frames were decoded than the header announced (file cut short, or frames the
    /// demuxer dropped while resynchronising on corrupt data, which shifts later audio
    /// earlier), or the container became unreadable part-way. The audio decoded is returned.
    /// Best effort: WAV, FLAC and MP3 with a Xing/LAME header announce their length; a cut Ogg
    /// file looks complete (its length is read from its last complete page).
    pub truncated: bool,
}

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

/// How much of the start of a file the WAV pre-check looks at.
const HEADER_PEEK: usize = 64 * 1024;

/// Rejects WAV headers that make symphonia 0.5 panic or misbehave, with a precise error, and
/// returns the WAV format tag (so that an unsupported WAV codec can be named).
///
/// A 0 Hz `fmt ` chunk panics inside symphonia's `TimeBase::new`; 0 channels, a 0-byte frame
/// or a missing `fmt ` chunk are reported here too because the messages are clearer than
/// symphonia's. Anything this cannot parse is left to symphonia.
fn precheck_wav_header(head: &[u8]) -> Result<Option<u16>, AudioError> {
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
fn wav_codec_name(tag: u16) -> String {
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
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!(%msg, "audio decoder panicked; input rejected");
            Err(AudioError::DecoderPanic(msg))
        }
    }
}

/// Per-track decoding state; replaced when a chained stream starts a new track.
struct TrackState {
    id: u32,
    decoder: Box<dyn Decoder>,
    /// Frames the header announces for this track, if it says.
    expected_frames: Option<u64>,
    /// Hard cap on frames taken from this track (see [`TrackState::new`]).
    frame_cap: Option<u64>,
    /// Frames pushed so far, decoded or concealed.
    frames: u64,
    /// Sample rate: from the header, then from the last decoded packet.
    rate: Option<u32>,
    /// Timestamp just past the last packet seen.
    next_ts: Option<u64>,
    /// Packet timestamps count frames (time base 1/rate), so jumps measure lost audio.
    ts_in_frames: bool,
}

impl TrackState {
    fn new(reader: &dyn FormatReader) -> Result<Self, AudioError> {
        let track = select_track(reader)?;
        let params = &track.codec_params;
        if let Some(rate) = params.sample_rate {
            validate_rate(rate)?;
        }
        let decoder = make_decoder(&track)?;
        tracing::debug!(
            codec = %codec_name(params.codec),
            rate = ?params.sample_rate,
            channels = ?params.channels.map(|c| c.count()),
            frames = ?params.n_frames,
            "decoding audio track"
        );
        // symphonia 0.5 trims the Vorbis start delay in gapless mode but not the end padding,
        // leaving `delay` extra frames at the end; the Ogg end-probe's frame count is exact,
        // so it caps the track.
        let frame_cap = if params.codec == codecs::CODEC_TYPE_VORBIS {
            params.n_frames
        } else {
            None
        };
        Ok(Self {
            id: track.id,
            decoder,
            expected_frames: params.n_frames,
            frame_cap,
            frames: 0,
            rate: params.sample_rate,
            next_ts: None,
            ts_in_frames: match (params.time_base, params.sample_rate) {
                (Some(tb), Some(rate)) => tb.numer == 1 && tb.denom == rate,
                _ => false,
            },
        })
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
    Ok((Audio16k { samples }, report))
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

fn select_track(reader: &dyn FormatReader) -> Result<Track, AudioError> {
    reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != codecs::CODEC_TYPE_NULL)
        .cloned()
        .ok_or(AudioError::NoAudioTrack)
}

fn make_decoder(track: &Track) -> Result<Box<dyn Decoder>, AudioError> {
    symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| match e {
            SymphoniaError::Unsupported(_) => AudioError::UnsupportedCodec {
                codec: codec_name(track.codec_params.codec),
            },
            other => AudioError::Corrupt(format!("cannot initialise the decoder ({other})")),
        })
}

fn validate_rate(rate: u32) -> Result<(), AudioError> {
    if (MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::InvalidSampleRate(rate))
    }
}

/// Names a codec for error messages; symphonia only knows the names of codecs it decodes.
fn codec_name(codec: CodecType) -> String {
    if let Some(d) = symphonia::default::get_codecs().get_codec(codec) {
        return d.short_name.to_owned();
    }
    let name = match codec {
        codecs::CODEC_TYPE_OPUS => "Opus",
        codecs::CODEC_TYPE_AAC => "AAC",
        codecs::CODEC_TYPE_ALAC => "ALAC",
        codecs::CODEC_TYPE_SPEEX => "Speex",
        codecs::CODEC_TYPE_MP1 => "MPEG-1 Layer I",
        codecs::CODEC_TYPE_MP2 => "MPEG-1 Layer II",
        codecs::CODEC_TYPE_ADPCM_MS => "Microsoft ADPCM",
        codecs::CODEC_TYPE_ADPCM_IMA_WAV => "IMA ADPCM",
        codecs::CODEC_TYPE_PCM_ALAW => "A-law PCM",
        codecs::CODEC_TYPE_PCM_MULAW => "mu-law PCM",
        codecs::CODEC_TYPE_WMA => "WMA",
        codecs::CODEC_TYPE_EAC3 => "E-AC-3",
        _ => return format!("with id {codec}"),
    };
    name.to_owned()
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

/// Number of 16 kHz samples for `frames` at `rate`, rounded to nearest.
fn output_len(frames: u64, rate: u32) -> u64 {
    let num = u128::from(frames) * u128::from(SAMPLE_RATE) + u128::from(rate) / 2;
    u64::try_from(num / u128::from(rate)).unwrap_or(u64::MAX)
}

/// Mean of the channels, as `f32`, into `mono`.
fn downmix(buf: &AudioBufferRef<'_>, mono: &mut Vec<f32>) {
    match buf {
        AudioBufferRef::U8(b) => downmix_typed(b, mono),
        AudioBufferRef::U16(b) => downmix_typed(b, mono),
        AudioBufferRef::U24(b) => downmix_typed(b, mono),
        AudioBufferRef::U32(b) => downmix_typed(b, mono),
        AudioBufferRef::S8(b) => downmix_typed(b, mono),
        AudioBufferRef::S16(b) => downmix_typed(b, mono),
        AudioBufferRef::S24(b) => downmix_typed(b, mono),
        AudioBufferRef::S32(b) => downmix_typed(b, mono),
        AudioBufferRef::F32(b) => downmix_typed(b, mono),
        AudioBufferRef::F64(b) => downmix_typed(b, mono),
    }
}

fn downmix_typed<S>(buf: &AudioBuffer<S>, mono: &mut Vec<f32>)
where
    S: Sample + IntoSample<f32>,
{
    let channels = buf.spec().channels.count();
    mono.clear();
    mono.resize(buf.frames(), 0.0);
    for c in 0..channels {
        for (m, &s) in mono.iter_mut().zip(buf.chan(c)) {
            *m += IntoSample::<f32>::into_sample(s);
        }
    }
    if channels > 1 {
        let inv = 1.0 / channels as f32;
        mono.iter_mut().for_each(|m| *m *= inv);
    }
}

/// Rounds and saturates; NaN maps to 0 (Rust's float-to-int cast semantics).
fn f32_to_i16(x: f32) -> i16 {
    (x * I16_SCALE).round() as i16
}

/// Streaming mono pipeline: resamples each run of constant source rate to 16 kHz and appends
/// to the `i16` output. A rate change mid-stream (chained Ogg, concatenated MP3) flushes the
/// current resampler and starts a new one.
struct Pipeline {
    out: Vec<i16>,
    stage: Option<Stage>,
    /// Output length limit ([`MAX_SAMPLES`] outside tests).
    max_samples: usize,
}

enum Stage {
    /// The source is already 16 kHz: convert only.
    Passthrough,
    Resample(Box<ResampleStage>),
}

struct ResampleStage {
    rate: u32,
    resampler: Box<dyn VecResampler<f32>>,
    /// One channel of the resampler's fixed input chunk size; `filled` frames are valid.
    input: Vec<Vec<f32>>,
    filled: usize,
    output: Vec<Vec<f32>>,
    /// Output samples still to drop at the start: the resampler's group delay, so that output
    /// sample 0 corresponds to input time 0.
    skip: usize,
    in_frames: u64,
    emitted: u64,
}

impl Pipeline {
    fn new(reserve: usize, max_samples: usize) -> Self {
        Self {
            out: Vec::with_capacity(reserve.min(max_samples)),
            stage: None,
            max_samples,
        }
    }

    fn push(&mut self, rate: u32, mono: &[f32]) -> Result<(), AudioError> {
        let same_rate = match &self.stage {
            None => false,
            Some(Stage::Passthrough) => rate == SAMPLE_RATE,
            Some(Stage::Resample(s)) => s.rate == rate,
        };
        if !same_rate {
            self.flush_stage()?;
            self.stage = Some(if rate == SAMPLE_RATE {
                Stage::Passthrough
            } else {
                Stage::Resample(Box::new(ResampleStage::new(rate)?))
            });
        }
        match &mut self.stage {
            Some(Stage::Passthrough) => {
                self.out.extend(mono.iter().map(|&x| f32_to_i16(x)));
            }
            Some(Stage::Resample(s)) => s.push(mono, &mut self.out)?,
            None => {}
        }
        if self.out.len() > self.max_samples {
            return Err(AudioError::TooLong);
        }
        Ok(())
    }

    fn flush_stage(&mut self) -> Result<(), AudioError> {
        if let Some(Stage::Resample(s)) = self.stage.take() {
            s.finish(&mut self.out)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<i16>, AudioError> {
        self.flush_stage()?;
        // Give back a reservation that the header over-estimated (e.g. truncated file).
        if self.out.capacity() - self.out.len() > self.out.len() / 64 + 4096 {
            self.out.shrink_to_fit();
        }
        Ok(self.out)
    }
}

impl ResampleStage {
    fn new(rate: u32) -> Result<Self, AudioError> {
        let Resampler16k {
            resampler,
            pre_pad,
            skip,
        } = make_resampler(rate)?;
        let input = vec![vec![0.0f32; resampler.input_frames_max()]];
        let output = resampler.output_buffer_allocate(true);
        Ok(Self {
            rate,
            resampler,
            input,
            // The input buffer starts zeroed: leading silence that delays the output.
            filled: pre_pad,
            output,
            skip,
            in_frames: 0,
            emitted: 0,
        })
    }

    fn push(&mut self, mut mono: &[f32], out: &mut Vec<i16>) -> Result<(), AudioError> {
        self.in_frames += mono.len() as u64;
        while !mono.is_empty() {
            let need = self.resampler.input_frames_next();
            let take = (need - self.filled).min(mono.len());
            self.input[0][self.filled..self.filled + take].copy_from_slice(&mono[..take]);
            self.filled += take;
            mono = &mono[take..];
            if self.filled == need {
                self.process(out, u64::MAX)?;
            }
        }
        Ok(())
    }

    /// Resamples the full input chunk and appends at most `limit - emitted` samples.
    fn process(&mut self, out: &mut Vec<i16>, limit: u64) -> Result<(), AudioError> {
        let (_, produced) = self
            .resampler
            .process_into_buffer(&self.input, &mut self.output, None)
            .map_err(|e| AudioError::Resample(e.to_string()))?;
        self.filled = 0;
        let mut produced = &self.output[0][..produced];
        let skip = self.skip.min(produced.len());
        self.skip -= skip;
        produced = &produced[skip..];
        let room = usize::try_from(limit.saturating_sub(self.emitted)).unwrap_or(usize::MAX);
        let produced = &produced[..produced.len().min(room)];
        out.extend(produced.iter().map(|&x| f32_to_i16(x)));
        self.emitted += produced.len() as u64;
        Ok(())
    }

    /// Pads the final partial chunk with zeros and keeps feeding silence until the delayed
    /// tail has come out, then stops at exactly round(in_frames * 16000 / rate) samples.
    fn finish(mut self, out: &mut Vec<i16>) -> Result<(), AudioError> {
        let target = output_len(self.in_frames, self.rate);
        // Each call yields at least one output frame once the delay is consumed; the bound
        // only guards against a resampler that stops producing.
        let mut guard = 0u32;
        while self.emitted < target {
            let need = self.resampler.input_frames_next();
            self.input[0][self.filled..need].fill(0.0);
            self.process(out, target)?;
            guard += 1;
            if guard > 10_000 {
                return Err(AudioError::Resample(
                    "resampler stopped producing output while flushing".into(),
                ));
            }
        }
        Ok(())
    }
}

/// A resampler plus the bookkeeping that makes its output start at input time 0.
struct Resampler16k {
    resampler: Box<dyn VecResampler<f32>>,
    /// Zero input frames to feed first (delays the output).
    pre_pad: usize,
    /// Output samples to drop first (advances the output).
    skip: usize,
}

/// Builds a mono resampler from `rate` to 16 kHz.
///
/// The synchronous FFT resampler is exact for rational ratios and fast; its block is a
/// multiple of the ratio's reduced denominator. The multiple is kept even so the filter's
/// group delay (`output_delay`, half a block) is a whole number of output samples: dropping it
/// leaves no time shift. Rates whose reduced ratio needs huge blocks fall back to the sinc
/// resampler.
///
/// rubato 0.16's `SincFixedIn` already centres its kernel (its `output_delay()` does not
/// describe the output): measured, output sample `j` lies at input time `(j + 1) / 16000 s`
/// minus one input sample, i.e. the output is early by `1 - r` output samples, where
/// `r = 16000 / rate`. Feeding `k` zero input frames delays it by `k * r`, dropping `m` outputs
/// advances it by `m`; `k` and `m` are chosen to leave less than half an output sample. The
/// `odd_rate_*` tests pin this behaviour.
fn make_resampler(rate: u32) -> Result<Resampler16k, AudioError> {
    let rate_in = rate as usize;
    let rate_out = SAMPLE_RATE as usize;
    let g = gcd(rate_in, rate_out);
    let min_in = rate_in / g;
    let mut k = FFT_TARGET_BLOCK.div_ceil(min_in).max(2);
    k += k % 2;
    let block = min_in * k;
    let err = |e: rubato::ResamplerConstructionError| AudioError::Resample(e.to_string());
    if block <= FFT_MAX_BLOCK {
        let r = FftFixedInOut::<f32>::new(rate_in, rate_out, block, 1).map_err(err)?;
        let skip = rubato::Resampler::output_delay(&r);
        return Ok(Resampler16k {
            resampler: Box::new(r),
            pre_pad: 0,
            skip,
        });
    }
    let sinc_len = 256;
    let window = WindowFunction::BlackmanHarris2;
    let params = SincInterpolationParameters {
        sinc_len,
        f_cutoff: calculate_cutoff(sinc_len, window),
        interpolation: SincInterpolationType::Cubic,
        oversampling_factor: 256,
        window,
    };
    let ratio = rate_out as f64 / rate_in as f64;
    let r = SincFixedIn::<f32>::new(ratio, 1.0, params, SINC_CHUNK, 1).map_err(err)?;
    // Both values are small: ratio is within [0.016, 16] for the accepted rates.
    let (pre_pad, skip) = if ratio < 1.0 {
        ((1.0 / ratio - 1.0).round() as usize, 0)
    } else {
        (0, (ratio - 1.0).round() as usize)
    };
    Ok(Resampler16k {
        resampler: Box::new(r),
        pre_pad,
        skip,
    })
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/audio/");

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{FIXTURES}{name}");
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {path}: {e}"))
    }

    #[derive(Clone, Copy, Debug)]
    enum Fmt {
        U8,
        S16,
        S24,
        S32,
        F32,
        F64,
    }

    impl Fmt {
        fn bytes(self) -> u16 {
            match self {
                Fmt::U8 => 1,
                Fmt::S16 => 2,
                Fmt::S24 => 3,
                Fmt::S32 | Fmt::F32 => 4,
                Fmt::F64 => 8,
            }
        }

        fn tag(self) -> u16 {
            match self {
                Fmt::F32 | Fmt::F64 => 3,
                _ => 1,
            }
        }

        fn encode(self, v: f64, out: &mut Vec<u8>) {
            let c = v.clamp(-1.0, 1.0);
            match self {
                Fmt::U8 => out.push((c * 127.0 + 128.0).round() as u8),
                Fmt::S16 => out.extend(((c * 32767.0).round() as i16).to_le_bytes()),
                Fmt::S24 => out.extend(&((c * 8_388_607.0).round() as i32).to_le_bytes()[..3]),
                Fmt::S32 => out.extend(((c * 2_147_483_647.0).round() as i32).to_le_bytes()),
                Fmt::F32 => out.extend((v as f32).to_le_bytes()),
                Fmt::F64 => out.extend(v.to_le_bytes()),
            }
        }
    }

    /// A canonical 44-byte WAV header announcing `data_len` bytes of audio.
    fn wav_header(rate: u32, channels: u16, fmt: Fmt, data_len: u32) -> Vec<u8> {
        let block_align = channels * fmt.bytes();
        let mut h = Vec::with_capacity(44);
        h.extend(b"RIFF");
        h.extend(36u32.saturating_add(data_len).to_le_bytes());
        h.extend(b"WAVEfmt ");
        h.extend(16u32.to_le_bytes());
        h.extend(fmt.tag().to_le_bytes());
        h.extend(channels.to_le_bytes());
        h.extend(rate.to_le_bytes());
        h.extend((rate * u32::from(block_align)).to_le_bytes());
        h.extend(block_align.to_le_bytes());
        h.extend((fmt.bytes() * 8).to_le_bytes());
        h.extend(b"data");
        h.extend(data_len.to_le_bytes());
        h
    }

    /// A WAV file of `frames` frames; `signal(t_secs, channel)` gives each sample.
    fn wav(
        rate: u32,
        channels: u16,
        fmt: Fmt,
        frames: usize,
        signal: impl Fn(f64, usize) -> f64,
    ) -> Vec<u8> {
        let data_len = frames * usize::from(channels) * usize::from(fmt.bytes());
        let mut w = wav_header(rate, channels, fmt, data_len as u32);
        w.reserve(data_len);
        for i in 0..frames {
            let t = i as f64 / f64::from(rate);
            for c in 0..usize::from(channels) {
                fmt.encode(signal(t, c), &mut w);
            }
        }
        w
    }

    fn sine(freq: f64, amp: f64) -> impl Fn(f64, usize) -> f64 {
        move |t, _| amp * (2.0 * PI * freq * t).sin()
    }

    fn to_f32(a: &Audio16k) -> Vec<f32> {
        let mut v = vec![0.0; a.len()];
        a.copy_window_f32(0, &mut v);
        v
    }

    /// Frequency from interpolated upward zero crossings.
    fn zero_crossing_freq(x: &[f32]) -> f64 {
        let mut first = None;
        let mut last = 0.0;
        let mut count = 0usize;
        for i in 1..x.len() {
            let (a, b) = (f64::from(x[i - 1]), f64::from(x[i]));
            if a < 0.0 && b >= 0.0 {
                let t = (i - 1) as f64 + a / (a - b);
                first.get_or_insert(t);
                last = t;
                count += 1;
            }
        }
        let first = first.expect("no zero crossing");
        (count - 1) as f64 * f64::from(SAMPLE_RATE) / (last - first)
    }

    /// Amplitude and time shift (in 16 kHz samples, positive = late) of a sine of known
    /// frequency that started at phase 0 at t = 0, fitted over whole cycles of `x[from..to]`.
    fn sine_fit(x: &[f32], freq: f64, from: usize, to: usize) -> (f64, f64) {
        let w = 2.0 * PI * freq / f64::from(SAMPLE_RATE);
        let period = f64::from(SAMPLE_RATE) / freq;
        let cycles = ((to - from) as f64 / period).floor();
        let n_end = from + (cycles * period).round() as usize;
        let (mut s, mut c) = (0.0, 0.0);
        for (n, &y) in x.iter().enumerate().take(n_end).skip(from) {
            s += f64::from(y) * (w * n as f64).sin();
            c += f64::from(y) * (w * n as f64).cos();
        }
        let len = (n_end - from) as f64;
        let (a, b) = (2.0 * s / len, 2.0 * c / len);
        // y = A sin(w (n - d)) = A cos(wd) sin(wn) - A sin(wd) cos(wn)
        let amp = a.hypot(b);
        let delay = (-b).atan2(a) / w;
        (amp, delay)
    }

    /// Checks length, pitch, amplitude and timing of a decoded 440 Hz sine.
    fn check_tone(audio: &Audio16k, in_frames: usize, in_rate: u32, amp: f64, delay_tol: f64) {
        let expected = (in_frames as f64 * 16_000.0 / f64::from(in_rate)).round() as i64;
        let got = audio.len() as i64;
        assert!(
            (got - expected).abs() <= 1,
            "length {got}, expected {expected} (±1)"
        );
        let x = to_f32(audio);
        // Skip the edges, where the band-limited resampler rings against the implicit
        // silence around the file.
        let (from, to) = (800, x.len() - 800);
        let f = zero_crossing_freq(&x[from..to]);
        assert!((f - 440.0).abs() < 1.0, "frequency {f} Hz, expected 440 Hz");
        let (a, d) = sine_fit(&x, 440.0, from, to);
        assert!(
            (a - amp).abs() < 0.01 * amp.max(0.1),
            "amplitude {a}, expected {amp}"
        );
        assert!(d.abs() < delay_tol, "time shift {d} samples");
    }

    #[test]
    fn tone_44k1_stereo_16bit_keeps_length_pitch_amplitude_and_timing() {
        // Odd frame count: the last resampler chunk is partial. Channels differ so that the
        // down-mix must be the mean (0.6 and 0.2 -> 0.4), not the sum or the left channel.
        let frames = 44_100 * 2 + 37;
        let bytes = wav(44_100, 2, Fmt::S16, frames, |t, c| {
            let amp = if c == 0 { 0.6 } else { 0.2 };
            amp * (2.0 * PI * 440.0 * t).sin()
        });
        let (audio, report) = decode_bytes_with_report(bytes, Some("wav")).unwrap();
        assert_eq!(audio.len(), 32_013); // round(88237 * 16000 / 44100) = 32013.4
        check_tone(&audio, frames, 44_100, 0.4, 0.5);
        assert_eq!(report.source_rate, 44_100);
        assert_eq!(report.source_channels, 2);
        assert_eq!(report.source_frames, frames as u64);
        assert_eq!(
            (report.gaps, report.skipped_packets, report.concealed_frames),
            (0, 0, 0)
        );
        assert_eq!(report.container_errors, 0);
        assert!(!report.truncated);
    }

    #[test]
    fn tone_48k_24bit() {
        let frames = 48_000 + 11;
        let bytes = wav(48_000, 1, Fmt::S24, frames, sine(440.0, 0.5));
        let audio = decode_bytes(bytes, None).unwrap();
        check_tone(&audio, frames, 48_000, 0.5, 0.5);
    }

    #[test]
    fn tone_8k_is_upsampled() {
        let frames = 8_000 + 3;
        let bytes = wav(8_000, 1, Fmt::S16, frames, sine(440.0, 0.5));
        let audio = decode_bytes(bytes, Some("wav")).unwrap();
        check_tone(&audio, frames, 8_000, 0.5, 0.5);
    }

    #[test]
    fn tone_float32_and_float64_wav() {
        for fmt in [Fmt::F32, Fmt::F64] {
            let frames = 22_050;
            let bytes = wav(22_050, 2, fmt, frames, sine(440.0, 0.5));
            let audio = decode_bytes(bytes, Some("wav")).unwrap();
            check_tone(&audio, frames, 22_050, 0.5, 0.5);
        }
    }

    #[test]
    fn tone_8bit_and_32bit_int_wav() {
        for fmt in [Fmt::U8, Fmt::S32] {
            let frames = 32_000 + 5;
            let bytes = wav(32_000, 1, fmt, frames, sine(440.0, 0.5));
            let audio = decode_bytes(bytes, None).unwrap();
            check_tone(&audio, frames, 32_000, 0.5, 0.5);
        }
    }

    #[test]
    fn six_channel_wav_is_averaged() {
        // Amplitudes 0.1..0.6 average to 0.35.
        let frames = 48_000;
        let bytes = wav(48_000, 6, Fmt::S16, frames, |t, c| {
            0.1 * (c + 1) as f64 * (2.0 * PI * 440.0 * t).sin()
        });
        let (audio, report) = decode_bytes_with_report(bytes, Some("wav")).unwrap();
        assert_eq!(report.source_channels, 6);
        check_tone(&audio, frames, 48_000, 0.35, 0.5);
    }

    #[test]
    fn odd_rate_uses_sinc_fallback_and_stays_aligned() {
        // gcd(44101, 16000) = 1: the exact FFT block would be huge, so the sinc resampler runs.
        let frames = 44_101 + 999;
        let bytes = wav(44_101, 1, Fmt::S16, frames, sine(440.0, 0.5));
        let audio = decode_bytes(bytes, None).unwrap();
        check_tone(&audio, frames, 44_101, 0.5, 0.5);
        // Upsampling through the sinc path (gcd(8001, 16000) = 1).
        let frames = 8_001 + 77;
        let bytes = wav(8_001, 1, Fmt::S16, frames, sine(440.0, 0.5));
        let audio = decode_bytes(bytes, None).unwrap();
        check_tone(&audio, frames, 8_001, 0.5, 0.5);
    }

    #[test]
    fn sixteen_khz_16bit_passes_through_bit_exact() {
        let frames = 16_000;
        let bytes = wav(16_000, 1, Fmt::S16, frames, sine(440.0, 0.5));
        let expected: Vec<i16> = bytes[44..]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let audio = decode_bytes(bytes, None).unwrap();
        assert_eq!(audio.samples(), &expected[..]);
    }

    #[test]
    fn project_speech_sample_decodes_bit_exact() {
        // Real 16 kHz mono speech with a LIST chunk before the data.
        let path = format!("{FIXTURES}../pyannote-sample.wav");
        let raw = std::fs::read(&path).unwrap();
        let data = raw.windows(4).position(|w| w == b"data").unwrap() + 8;
        let expected: Vec<i16> = raw[data..]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let audio = decode_file(Path::new(&path)).unwrap();
        assert_eq!(audio.len(), 480_000);
        assert!(audio.samples() == &expected[..]);
    }

    #[test]
    fn ten_minutes_of_44k1_stereo_decode_to_the_right_length() {
        // 441 Hz at 44.1 kHz repeats every 100 frames: build one period and tile it, so the
        // test spends its time decoding rather than synthesising.
        let rate = 44_100u32;
        let frames = 10 * 60 * rate as usize + 77;
        let mut period = Vec::with_capacity(400);
        for i in 0..100 {
            let v = 0.5 * (2.0 * PI * 441.0 * i as f64 / f64::from(rate)).sin();
            Fmt::S16.encode(v, &mut period);
            Fmt::S16.encode(-v, &mut period);
        }
        let data_len = frames * 4;
        let mut bytes = wav_header(rate, 2, Fmt::S16, data_len as u32);
        bytes.reserve(data_len);
        for _ in 0..frames / 100 {
            bytes.extend_from_slice(&period);
        }
        bytes.extend_from_slice(&period[..(frames % 100) * 4]);
        let start = std::time::Instant::now();
        let (audio, report) = decode_bytes_with_report(bytes, Some("wav")).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(report.source_frames, frames as u64);
        let expected = (frames as f64 * 16_000.0 / 44_100.0).round() as usize;
        assert!(
            audio.len().abs_diff(expected) <= 1,
            "{} vs {expected}",
            audio.len()
        );
        // Opposite-phase channels cancel in the mean: the output must be near silence.
        let peak = audio.samples().iter().map(|s| s.unsigned_abs()).max();
        assert!(peak.unwrap_or(0) <= 2, "peak {peak:?}");
        eprintln!("10 min of 44.1 kHz stereo decoded in {elapsed:?}");
    }

    #[test]
    fn long_input_tone_is_resampled_correctly_across_many_chunks() {
        let frames = 44_100 * 20;
        let bytes = wav(44_100, 1, Fmt::S16, frames, sine(440.0, 0.5));
        let audio = decode_bytes(bytes, None).unwrap();
        check_tone(&audio, frames, 44_100, 0.5, 0.5);
    }

    #[test]
    fn resampling_is_band_limited() {
        // Above the 8 kHz output Nyquist frequency a tone must vanish instead of aliasing
        // (12 kHz would fold to 4 kHz); below it, it must pass at full amplitude.
        let rms_of = |freq: f64, rate: u32| {
            let bytes = wav(rate, 1, Fmt::F32, rate as usize, sine(freq, 0.5));
            let x = to_f32(&decode_bytes(bytes, None).unwrap());
            let mid = &x[2_000..14_000];
            (mid.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / mid.len() as f64).sqrt()
        };
        let full = 0.5 / 2f64.sqrt();
        for rate in [44_100, 48_000, 44_101] {
            let alias = rms_of(12_000.0, rate);
            assert!(
                alias < full * 1e-3,
                "{rate} Hz: 12 kHz leaks at rms {alias}"
            );
            let pass = rms_of(7_000.0, rate);
            assert!(
                (pass / full - 1.0).abs() < 0.02,
                "{rate} Hz: 7 kHz at {pass}"
            );
        }
    }

    // ---- bad input -------------------------------------------------------------------

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

    #[test]
    fn symphonia_panics_become_errors() {
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
        let err = decode_bytes(h, None).unwrap_err();
        if cfg!(debug_assertions) {
            assert!(matches!(err, AudioError::DecoderPanic(_)), "{err:?}");
        }
    }

    #[test]
    fn decompression_bombs_are_rejected() {
        // A WAV header cannot be a bomb (PCM is as big as its audio), but a forged huge data
        // length must not make the decoder reserve that much memory; with the data present
        // only up to 1 s it simply decodes 1 s.
        let mut bytes = wav_header(16_000, 1, Fmt::S16, u32::MAX - 64);
        bytes.resize(44 + 32_000, 0);
        let (audio, report) = decode_bytes_with_report(bytes, None).unwrap();
        assert_eq!(audio.len(), 16_000);
        assert!(report.truncated);
        // The pipeline refuses to grow past its limit (MAX_SAMPLES in real decodes; 10 s here
        // so the test stays fast), through both the pass-through and the resampling path.
        for rate in [SAMPLE_RATE, 44_100] {
            let mut p = Pipeline::new(usize::MAX, 160_000);
            let block = vec![0.1f32; rate as usize];
            let mut result = Ok(());
            for _ in 0..11 {
                result = p.push(rate, &block);
                if result.is_err() {
                    break;
                }
            }
            assert!(matches!(result, Err(AudioError::TooLong)), "{result:?}");
        }
        let mut p = Pipeline::new(0, 160_000);
        p.push(48_000, &vec![0.1f32; 480_000]).unwrap();
        assert_eq!(p.finish().unwrap().len(), 160_000);
    }

    /// Deterministic xorshift, so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
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

    // ---- Audio16k ----------------------------------------------------------------------

    #[test]
    fn from_f32_clamps_and_copy_window_pads() {
        let a = Audio16k::from_f32_16k(&[0.0, 0.5, -0.5, 2.0, -2.0, f32::NAN]);
        assert_eq!(a.samples(), &[0, 16_384, -16_384, 32_767, -32_768, 0]);
        assert_eq!(a.len(), 6);
        assert!(!a.is_empty());
        assert!((a.duration_secs() - 6.0 / 16_000.0).abs() < 1e-12);
        let mut out = [9.0f32; 4];
        a.copy_window_f32(4, &mut out);
        assert_eq!(out, [-1.0, 0.0, 0.0, 0.0]);
        a.copy_window_f32(100, &mut out);
        assert_eq!(out, [0.0; 4]);
        a.copy_window_f32(1, &mut out);
        assert_eq!(out, [0.5, -0.5, 32_767.0 / 32_768.0, -1.0]);
        assert!(Audio16k::default().is_empty());
    }
}
