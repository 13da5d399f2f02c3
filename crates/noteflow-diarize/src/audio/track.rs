//! Picking the audio track of a container and building its decoder, and the per-track state
//! the packet loop keeps.

use symphonia::core::codecs::{self, CodecType, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatReader, Track};

use crate::audio::error::AudioError;
use crate::audio::limits::{MAX_SOURCE_RATE, MIN_SOURCE_RATE};

/// Per-track decoding state; replaced when a chained stream starts a new track.
pub(super) struct TrackState {
    pub(super) id: u32,
    pub(super) decoder: Box<dyn Decoder>,
    /// Frames the header announces for this track, if it says.
    pub(super) expected_frames: Option<u64>,
    /// Hard cap on frames taken from this track (see [`TrackState::new`]).
    pub(super) frame_cap: Option<u64>,
    /// Frames pushed so far, decoded or concealed.
    pub(super) frames: u64,
    /// Sample rate: from the header, then from the last decoded packet.
    pub(super) rate: Option<u32>,
    /// Timestamp just past the last packet seen.
    pub(super) next_ts: Option<u64>,
    /// Packet timestamps count frames (time base 1/rate), so jumps measure lost audio.
    pub(super) ts_in_frames: bool,
}

impl TrackState {
    pub(super) fn new(reader: &dyn FormatReader) -> Result<Self, AudioError> {
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

pub(super) fn select_track(reader: &dyn FormatReader) -> Result<Track, AudioError> {
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

pub(super) fn validate_rate(rate: u32) -> Result<(), AudioError> {
    if (MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::InvalidSampleRate(rate))
    }
}

/// Names a codec for error messages; symphonia only knows the names of codecs it decodes.
pub(super) fn codec_name(codec: CodecType) -> String {
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
