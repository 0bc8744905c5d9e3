//! MP3, WAV, AIFF, FLAC and Ogg through symphonia's demuxers.

use super::{AvInfo, BTreeMap, Input, MAX_CHILDREN, Read, ReadAtCursor, Seek, clean_text};
use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::AudioCodecId;
use symphonia::core::codecs::audio::well_known as codec;
use symphonia::core::common::Limit;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::{MetadataOptions, MetadataRevision, StandardTag};
use symphonia::core::units::TimeBase;

/// Probes `file` with symphonia's registered demuxers.
pub(super) fn probe(source: ReadAtCursor, mime: &str) -> Result<AvInfo, String> {
    let len = source.len();
    let riff = Some(source.clone());
    let mss = MediaSourceStream::new(Box::new(source), MediaSourceStreamOptions::default());
    let mut hint = Hint::new();
    hint.mime_type(mime);
    let meta_opts = MetadataOptions::default()
        .limit_tag_bytes(Limit::Maximum(64 * 1024))
        .limit_visual_bytes(Limit::Maximum(0));
    let mut format = symphonia::default::get_probe()
        .probe(&hint, mss, FormatOptions::default(), meta_opts)
        .map_err(|e| format!("the audio file cannot be read: {e}"))?;
    let track = format
        .default_track(TrackType::Audio)
        .or_else(|| format.first_track(TrackType::Audio))
        .ok_or_else(|| "the file has no audio track".to_owned())?;
    let track_id = track.id;
    let mut info = AvInfo::default();
    let mut sample_rate = None;
    if let Some(CodecParameters::Audio(params)) = &track.codec_params {
        info.audio_codec = codec_name(params.codec);
        sample_rate = params.sample_rate.filter(|&r| r > 0);
        info.sample_rate = sample_rate;
        info.channels = params
            .channels
            .as_ref()
            .and_then(|c| u32::try_from(c.count()).ok())
            .filter(|&c| c > 0);
    }
    let time_base = track
        .time_base
        .or_else(|| sample_rate.and_then(TimeBase::try_from_recip));
    let length = track.duration.map(|d| d.get()).or(track.num_frames);
    info.duration_ms = match (time_base, length) {
        (Some(tb), Some(units)) => tb
            .calc_duration(units.into())
            .and_then(|t| i64::try_from(t.as_millis()).ok()),
        _ => None,
    };
    let mut metadata = format.metadata();
    let mut revisions = Vec::new();
    if let Some(rev) = metadata.current() {
        revisions.push(rev.clone());
    }
    while metadata.pop().is_some() {
        if let Some(rev) = metadata.current() {
            revisions.push(rev.clone());
        }
    }
    // Later revisions win: ID3v2 (read after the trailing ID3v1) over ID3v1.
    for rev in &revisions {
        apply_tags(rev, u64::from(track_id), &mut info);
    }
    // symphonia 0.6.1 parses a WAV's LIST/INFO chunk but drops it before
    // returning the reader; read those tags here.
    if info.tags.is_empty()
        && let Some(riff) = riff
    {
        info.tags = riff_info_tags(&mut Input::new(riff, len));
    }
    Ok(info)
}

/// Title, artist and album from a RIFF WAVE file's LIST/INFO chunk
/// (INAM, IART, IPRD); empty when there is none or it is malformed.
pub(super) fn riff_info_tags<R: Read + Seek>(inp: &mut Input<R>) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    let mut head = [0; 12];
    if inp.read_exact_at(0, &mut head).is_err() || &head[..4] != b"RIFF" || &head[8..] != b"WAVE" {
        return tags;
    }
    let chunk = |inp: &mut Input<R>, pos: u64| -> Option<([u8; 4], u64)> {
        let mut h = [0; 8];
        inp.read_exact_at(pos, &mut h).ok()?;
        let id = [h[0], h[1], h[2], h[3]];
        Some((id, u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]))))
    };
    let mut pos = 12;
    for _ in 0..MAX_CHILDREN {
        let Some((id, size)) = chunk(inp, pos) else {
            break;
        };
        let end = (pos + 8).saturating_add(size).min(inp.len);
        let mut form = [0; 4];
        if &id == b"LIST" && inp.read_exact_at(pos + 8, &mut form).is_ok() && &form == b"INFO" {
            let mut sub = pos + 12;
            for _ in 0..MAX_CHILDREN {
                let Some((id, size)) = chunk(inp, sub).filter(|_| sub + 8 <= end) else {
                    break;
                };
                let key = match &id {
                    b"INAM" => "title",
                    b"IART" => "artist",
                    b"IPRD" => "album",
                    _ => "",
                };
                let body_end = (sub + 8).saturating_add(size).min(end);
                if !key.is_empty()
                    && let Ok(text) = inp.read_capped(sub + 8, body_end, 4096)
                    && let Some(text) = clean_text(&text)
                {
                    tags.insert(key.to_owned(), text);
                }
                sub = body_end.saturating_add(size & 1);
            }
        }
        pos = end.saturating_add(size & 1);
        if pos >= inp.len {
            break;
        }
    }
    tags
}

fn apply_tags(rev: &MetadataRevision, track_id: u64, info: &mut AvInfo) {
    let track_tags = rev
        .per_track
        .iter()
        .filter(|t| t.track_id == track_id)
        .flat_map(|t| t.metadata.tags.iter());
    for tag in rev.media.tags.iter().chain(track_tags) {
        let (key, value) = match &tag.std {
            Some(StandardTag::TrackTitle(v)) => ("title", v),
            Some(StandardTag::Artist(v)) => ("artist", v),
            Some(StandardTag::Album(v)) => ("album", v),
            _ => continue,
        };
        let value = value.trim_end_matches('\0').trim();
        if !value.is_empty() {
            info.tags.insert(key.to_owned(), value.to_owned());
        }
    }
}

/// The short name of a symphonia audio codec.
fn codec_name(id: AudioCodecId) -> Option<String> {
    let name = match id {
        codec::CODEC_ID_MP1 => "mp1",
        codec::CODEC_ID_MP2 => "mp2",
        codec::CODEC_ID_MP3 => "mp3",
        codec::CODEC_ID_AAC => "aac",
        codec::CODEC_ID_FLAC => "flac",
        codec::CODEC_ID_VORBIS => "vorbis",
        codec::CODEC_ID_OPUS => "opus",
        codec::CODEC_ID_SPEEX => "speex",
        codec::CODEC_ID_ALAC => "alac",
        codec::CODEC_ID_AC3 => "ac3",
        codec::CODEC_ID_EAC3 => "eac3",
        codec::CODEC_ID_WAVPACK => "wavpack",
        codec::CODEC_ID_PCM_S8 => "pcm_s8",
        codec::CODEC_ID_PCM_U8 => "pcm_u8",
        codec::CODEC_ID_PCM_S16LE => "pcm_s16le",
        codec::CODEC_ID_PCM_S16BE => "pcm_s16be",
        codec::CODEC_ID_PCM_S24LE => "pcm_s24le",
        codec::CODEC_ID_PCM_S24BE => "pcm_s24be",
        codec::CODEC_ID_PCM_S32LE => "pcm_s32le",
        codec::CODEC_ID_PCM_S32BE => "pcm_s32be",
        codec::CODEC_ID_PCM_U16LE => "pcm_u16le",
        codec::CODEC_ID_PCM_U16BE => "pcm_u16be",
        codec::CODEC_ID_PCM_U24LE => "pcm_u24le",
        codec::CODEC_ID_PCM_U24BE => "pcm_u24be",
        codec::CODEC_ID_PCM_U32LE => "pcm_u32le",
        codec::CODEC_ID_PCM_U32BE => "pcm_u32be",
        codec::CODEC_ID_PCM_F32LE => "pcm_f32le",
        codec::CODEC_ID_PCM_F32BE => "pcm_f32be",
        codec::CODEC_ID_PCM_F64LE => "pcm_f64le",
        codec::CODEC_ID_PCM_F64BE => "pcm_f64be",
        codec::CODEC_ID_PCM_ALAW => "pcm_alaw",
        codec::CODEC_ID_PCM_MULAW => "pcm_mulaw",
        codec::CODEC_ID_ADPCM_MS => "adpcm_ms",
        codec::CODEC_ID_ADPCM_IMA_WAV => "adpcm_ima_wav",
        codec::CODEC_ID_ADPCM_IMA_QT => "adpcm_ima_qt",
        _ => return None,
    };
    Some(name.to_owned())
}
