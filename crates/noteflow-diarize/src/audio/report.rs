//! [`DecodeReport`]: what a decode tells its caller besides the audio.

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
