//! SDP for the IVR's answers (RFC 4566, RFC 3264 offer/answer, JSEP): reads what an
//! audio-only answer needs from a caller's offer (its media sections with their codecs,
//! mids, directions, DTLS roles and BUNDLE group) and writes an answer that keeps each audio
//! section with a codec in common and rejects every other section with port 0.

use std::fmt::Write as _;

/// Offers past this size are refused before they are read.
pub const MAX_SDP_BYTES: usize = 64 * 1024;
const MAX_LINES: usize = 4000;
const MAX_SECTIONS: usize = 32;
const MAX_FORMATS: usize = 128;

/// Which way media flows in a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv`.
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    fn parse(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The direction an answer gives to an offer of this one.
    fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// One `a=rtpmap`, or what a static payload type stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// The payload type.
    pub pt: u8,
    /// The encoding name as written (`opus`, `PCMU`, `telephone-event`).
    pub name: String,
    /// The clock rate.
    pub clock: u32,
    /// Audio channels, when given.
    pub channels: Option<u8>,
}

/// One media section of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// `audio`, `video`, `application`, …
    pub media: String,
    /// 0 when the offerer itself rejected it.
    pub port: u16,
    /// `UDP/TLS/RTP/SAVPF`, `UDP/DTLS/SCTP`, …
    pub proto: String,
    /// The formats of the m-line, as written.
    pub formats: Vec<String>,
    /// `a=mid`.
    pub mid: Option<String>,
    /// `a=sendrecv` and the like.
    pub direction: Option<Direction>,
    /// `a=setup`.
    pub setup: Option<String>,
    /// `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// `a=rtpmap` by payload type.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp`: payload type and parameters.
    pub fmtps: Vec<(u8, String)>,
}

/// What an answer needs from an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The mids of the session's `a=group:BUNDLE`.
    pub bundle: Vec<String>,
    /// A session-level direction, which sections without one of their own take.
    pub direction: Option<Direction>,
    /// A session-level `a=setup`.
    pub setup: Option<String>,
    /// The media sections in order.
    pub sections: Vec<Section>,
}

/// The IVR's side of the session: its ICE credentials and DTLS fingerprint, kept for the
/// whole call so that a renegotiation answers with the same ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// `a=ice-ufrag`.
    pub ufrag: String,
    /// `a=ice-pwd`.
    pub pwd: String,
    /// `a=fingerprint`: the hash function, a space, the hex pairs.
    pub fingerprint: String,
    /// The `o=` line's session id.
    pub session_id: u64,
    /// The `o=` line's version: one more for each new answer in the call.
    pub version: u64,
}

/// Why no answer could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerError {
    /// The offer's audio shares no codec with the configured ones: the codecs it had.
    NoCommonCodec(Vec<String>),
}

impl Offer {
    /// Reads an offer; an error says what is wrong with it, for the caller.
    pub fn parse(text: &str) -> Result<Offer, String> {
        if text.len() > MAX_SDP_BYTES {
            return Err(format!("the SDP is larger than {MAX_SDP_BYTES} bytes"));
        }
        let mut offer = Offer {
            bundle: Vec::new(),
            direction: None,
            setup: None,
            sections: Vec::new(),
        };
        let mut saw_version = false;
        for (n, raw) in text.split('\n').enumerate() {
            if n >= MAX_LINES {
                return Err(format!("the SDP has more than {MAX_LINES} lines"));
            }
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            let bytes = line.as_bytes();
            if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
                return Err(format!("line {} is not of the form x=value", n + 1));
            }
            let value = &line[2..];
            if !saw_version {
                if line != "v=0" {
                    return Err("the SDP does not start with v=0".into());
                }
                saw_version = true;
                continue;
            }
            match bytes[0] {
                b'm' => {
                    if offer.sections.len() == MAX_SECTIONS {
                        return Err(format!("more than {MAX_SECTIONS} media sections"));
                    }
                    offer.sections.push(parse_media_line(value, n + 1)?);
                }
                b'a' => {
                    let (name, arg) = match value.split_once(':') {
                        Some((k, v)) => (k, Some(v)),
                        None => (value, None),
                    };
                    match offer.sections.last_mut() {
                        None => session_attribute(&mut offer, name, arg),
                        Some(s) => media_attribute(s, name, arg, n + 1)?,
                    }
                }
                _ => {}
            }
        }
        if !saw_version {
            return Err("the SDP is empty".into());
        }
        if offer.sections.is_empty() {
            return Err("the SDP has no media section".into());
        }
        Ok(offer)
    }

    /// The answer: each audio section with a codec in `codecs` (names, in order of
    /// preference; `telephone-event` rides along at the rates of the codecs kept) is
    /// accepted, every other section is rejected with port 0.
    pub fn answer(&self, codecs: &[String], local: &Local) -> Result<String, AnswerError> {
        let kept: Vec<Option<Vec<u8>>> = self
            .sections
            .iter()
            .map(|s| s.common_formats(codecs))
            .collect();
        if kept.iter().all(Option::is_none) {
            let mut offered: Vec<String> = Vec::new();
            for s in self.sections.iter().filter(|s| s.media == "audio") {
                for pt in s.payload_types() {
                    if let Some(m) = s.rtpmap(pt) {
                        if !offered.contains(&m.name) {
                            offered.push(m.name);
                        }
                    }
                }
            }
            return Err(AnswerError::NoCommonCodec(offered));
        }
        let mut out = String::new();
        let _ = write!(
            out,
            "v=0\r\no=- {} {} IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
            local.session_id, local.version
        );
        let accepted_mids: Vec<&str> = self
            .sections
            .iter()
            .zip(&kept)
            .filter(|(_, k)| k.is_some())
            .filter_map(|(s, _)| s.mid.as_deref())
            .collect();
        let bundle: Vec<&str> = self
            .bundle
            .iter()
            .map(String::as_str)
            .filter(|m| accepted_mids.contains(m))
            .collect();
        if !bundle.is_empty() {
            let _ = write!(out, "a=group:BUNDLE {}\r\n", bundle.join(" "));
        }
        for (section, kept) in self.sections.iter().zip(&kept) {
            match kept {
                Some(pts) => self.write_accepted(&mut out, section, pts, local),
                None => write_rejected(&mut out, section),
            }
        }
        Ok(out)
    }

    fn write_accepted(&self, out: &mut String, s: &Section, pts: &[u8], local: &Local) {
        let list: Vec<String> = pts.iter().map(u8::to_string).collect();
        let direction = s
            .direction
            .or(self.direction)
            .unwrap_or(Direction::SendRecv)
            .answer();
        // RFC 5763: the answerer to `actpass` should take the active role.
        let setup = match s.setup.as_deref().or(self.setup.as_deref()) {
            Some("active") => "passive",
            Some("holdconn") => "holdconn",
            _ => "active",
        };
        let _ = write!(
            out,
            "m=audio 9 {} {}\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:{}\r\na=setup:{setup}\r\n",
            s.proto,
            list.join(" "),
            local.ufrag,
            local.pwd,
            local.fingerprint
        );
        if let Some(mid) = &s.mid {
            let _ = write!(out, "a=mid:{mid}\r\n");
        }
        let _ = write!(out, "a={}\r\n", direction.as_str());
        if s.rtcp_mux {
            out.push_str("a=rtcp-mux\r\n");
        }
        for &pt in pts {
            if let Some(m) = s.rtpmap(pt) {
                let _ = write!(out, "a=rtpmap:{pt} {}/{}", m.name, m.clock);
                if let Some(ch) = m.channels {
                    let _ = write!(out, "/{ch}");
                }
                out.push_str("\r\n");
            }
            for (_, params) in s.fmtps.iter().filter(|(p, _)| *p == pt) {
                let _ = write!(out, "a=fmtp:{pt} {params}\r\n");
            }
        }
    }
}

fn write_rejected(out: &mut String, s: &Section) {
    let format = s.formats.first().map_or("0", String::as_str);
    let _ = write!(
        out,
        "m={} 0 {} {format}\r\nc=IN IP4 0.0.0.0\r\n",
        s.media, s.proto
    );
    if let Some(mid) = &s.mid {
        let _ = write!(out, "a=mid:{mid}\r\n");
    }
    out.push_str("a=inactive\r\n");
}

fn parse_media_line(value: &str, line: usize) -> Result<Section, String> {
    let mut words = value.split(' ').filter(|w| !w.is_empty());
    let bad = || format!("line {line}: an m-line is `m=media port proto formats…`");
    let media = words.next().ok_or_else(bad)?;
    let port = words.next().ok_or_else(bad)?;
    let port: u16 = port
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(bad)?;
    let proto = words.next().ok_or_else(bad)?;
    let formats: Vec<String> = words.map(str::to_string).collect();
    if formats.is_empty() || formats.len() > MAX_FORMATS || !media.chars().all(is_token_char) {
        return Err(bad());
    }
    Ok(Section {
        media: media.to_string(),
        port,
        proto: proto.to_string(),
        formats,
        mid: None,
        direction: None,
        setup: None,
        rtcp_mux: false,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
    })
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_graphic()
}

fn session_attribute(offer: &mut Offer, name: &str, arg: Option<&str>) {
    match (name, arg) {
        ("group", Some(g)) => {
            let mut words = g.split(' ').filter(|w| !w.is_empty());
            if words.next() == Some("BUNDLE") {
                offer.bundle = words.take(MAX_SECTIONS).map(str::to_string).collect();
            }
        }
        ("setup", Some(v)) => offer.setup = Some(v.trim().to_string()),
        (d, None) => {
            if let Some(d) = Direction::parse(d) {
                offer.direction = Some(d);
            }
        }
        _ => {}
    }
}

fn media_attribute(
    s: &mut Section,
    name: &str,
    arg: Option<&str>,
    line: usize,
) -> Result<(), String> {
    match (name, arg) {
        ("mid", Some(mid)) => {
            let mid = mid.trim();
            if mid.is_empty() || mid.len() > 32 || !mid.chars().all(is_token_char) {
                return Err(format!("line {line}: a=mid must be a short token"));
            }
            s.mid = Some(mid.to_string());
        }
        ("setup", Some(v)) => s.setup = Some(v.trim().to_string()),
        ("rtcp-mux", None) => s.rtcp_mux = true,
        ("rtpmap", Some(v)) => {
            let map = parse_rtpmap(v)
                .ok_or_else(|| format!("line {line}: a=rtpmap is `PT name/clock[/channels]`"))?;
            if s.rtpmaps.len() < MAX_FORMATS {
                s.rtpmaps.push(map);
            }
        }
        ("fmtp", Some(v)) => {
            let (pt, params) = v.split_once(' ').unwrap_or((v, ""));
            let pt: u8 = pt
                .parse()
                .map_err(|_| format!("line {line}: a=fmtp starts with a payload type"))?;
            let params = params.trim();
            if !params.is_empty() && s.fmtps.len() < MAX_FORMATS {
                s.fmtps.push((pt, params.to_string()));
            }
        }
        (d, None) => {
            if let Some(d) = Direction::parse(d) {
                s.direction = Some(d);
            }
        }
        _ => {}
    }
    Ok(())
}

fn parse_rtpmap(v: &str) -> Option<RtpMap> {
    let (pt, enc) = v.split_once(' ')?;
    let pt: u8 = pt.parse().ok().filter(|p| *p <= 127)?;
    let mut parts = enc.trim().split('/');
    let name = parts.next().filter(|n| !n.is_empty() && n.len() <= 32)?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return None;
    }
    let clock: u32 = parts.next()?.parse().ok().filter(|c| *c > 0)?;
    let channels = match parts.next() {
        None => None,
        Some(c) => Some(c.parse().ok().filter(|c: &u8| *c > 0)?),
    };
    if parts.next().is_some() {
        return None;
    }
    Some(RtpMap {
        pt,
        name: name.to_string(),
        clock,
        channels,
    })
}

/// The static audio payload types of RFC 3551 that an offer may list without an rtpmap.
fn static_payload(pt: u8) -> Option<RtpMap> {
    let (name, clock) = match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        13 => ("CN", 8000),
        18 => ("G729", 8000),
        _ => return None,
    };
    Some(RtpMap {
        pt,
        name: name.into(),
        clock,
        channels: None,
    })
}

impl Section {
    /// The m-line's formats that are payload types.
    fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|p| *p <= 127)
    }

    /// What a payload type of this section stands for.
    fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        self.rtpmaps
            .iter()
            .find(|m| m.pt == pt)
            .cloned()
            .or_else(|| static_payload(pt))
    }

    /// The payload types an answer keeps: for a live RTP audio section, the offered ones of
    /// each configured codec in the configuration's order, then the offered
    /// `telephone-event`s at the rates of those; `None` when no codec is in common.
    fn common_formats(&self, codecs: &[String]) -> Option<Vec<u8>> {
        if self.media != "audio" || self.port == 0 || !self.proto.contains("RTP/") {
            return None;
        }
        let offered: Vec<RtpMap> = self
            .payload_types()
            .filter_map(|pt| self.rtpmap(pt))
            .collect();
        let mut kept: Vec<&RtpMap> = Vec::new();
        for codec in codecs.iter().filter(|c| !is_dtmf(c)) {
            for m in offered
                .iter()
                .filter(|m| m.name.eq_ignore_ascii_case(codec))
            {
                if !kept.iter().any(|k| k.pt == m.pt) {
                    kept.push(m);
                }
            }
        }
        if kept.is_empty() {
            return None;
        }
        if codecs.iter().any(|c| is_dtmf(c)) {
            let rates: Vec<u32> = kept.iter().map(|m| m.clock).collect();
            for m in offered.iter().filter(|m| is_dtmf(&m.name)) {
                if rates.contains(&m.clock) && !kept.iter().any(|k| k.pt == m.pt) {
                    kept.push(m);
                }
            }
        }
        Some(kept.iter().map(|m| m.pt).collect())
    }
}

fn is_dtmf(name: &str) -> bool {
    name.eq_ignore_ascii_case("telephone-event")
}

#[cfg(test)]
pub mod fixtures {
    //! Offers as browsers send them, for the tests.

    /// Chrome 120, audio and video, BUNDLE, trickle ICE, with a data channel.
    pub const CHROME: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1 2\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS 5a6f2f4c-6a5e-4b5d-9c3a-0b9d2b2c7e11\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Kq3v\r\n\
a=ice-pwd:3fZLPEyCgS2Ezm3vzoWqV0kN\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 0F:74:31:25:CB:A2:13:EC:28:6F:6D:2C:61:FF:5D:C2:BC:B9:DB:3D:98:14:8D:1A:BB:EA:33:0C:A4:60:A8:8E\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=sendrecv\r\n\
a=msid:5a6f2f4c-6a5e-4b5d-9c3a-0b9d2b2c7e11 1c0c3a5e-2f1d-4f7e-8c2b-5d9e0f1a2b3c\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:3958219371 cname:i5yG1xZ8mNzv0c2T\r\n\
a=ssrc:3958219371 msid:5a6f2f4c-6a5e-4b5d-9c3a-0b9d2b2c7e11 1c0c3a5e-2f1d-4f7e-8c2b-5d9e0f1a2b3c\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Kq3v\r\n\
a=ice-pwd:3fZLPEyCgS2Ezm3vzoWqV0kN\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 0F:74:31:25:CB:A2:13:EC:28:6F:6D:2C:61:FF:5D:C2:BC:B9:DB:3D:98:14:8D:1A:BB:EA:33:0C:A4:60:A8:8E\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=extmap:14 urn:ietf:params:rtp-hdrext:toffset\r\n\
a=sendrecv\r\n\
a=msid:5a6f2f4c-6a5e-4b5d-9c3a-0b9d2b2c7e11 7d1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 goog-remb\r\n\
a=rtcp-fb:96 transport-cc\r\n\
a=rtcp-fb:96 ccm fir\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:103 rtx/90000\r\n\
a=fmtp:103 apt=102\r\n\
a=ssrc-group:FID 2231627014 632943048\r\n\
a=ssrc:2231627014 cname:i5yG1xZ8mNzv0c2T\r\n\
a=ssrc:632943048 cname:i5yG1xZ8mNzv0c2T\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Kq3v\r\n\
a=ice-pwd:3fZLPEyCgS2Ezm3vzoWqV0kN\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 0F:74:31:25:CB:A2:13:EC:28:6F:6D:2C:61:FF:5D:C2:BC:B9:DB:3D:98:14:8D:1A:BB:EA:33:0C:A4:60:A8:8E\r\n\
a=setup:actpass\r\n\
a=mid:2\r\n\
a=sctp-port:5000\r\n\
a=max-message-size:262144\r\n";

    /// Firefox 121, audio and video, BUNDLE, with the session-level fingerprint Firefox
    /// writes.
    pub const FIREFOX: &str = "v=0\r\n\
o=mozilla...THIS_IS_SDPARTA-99.0 6558263917306155441 0 IN IP4 0.0.0.0\r\n\
s=-\r\n\
t=0 0\r\n\
a=fingerprint:sha-256 9D:56:6E:0E:EC:97:38:7C:6B:5F:BC:3E:8F:C2:6D:A5:12:CF:1B:57:8F:AC:6E:5B:E2:C1:7B:36:5A:01:9B:11\r\n\
a=group:BUNDLE 0 1\r\n\
a=ice-options:trickle\r\n\
a=msid-semantic:WMS *\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101\r\n\
c=IN IP4 0.0.0.0\r\n\
a=sendrecv\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level\r\n\
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1\r\n\
a=fmtp:101 0-15\r\n\
a=ice-pwd:1d8fd9ddc4c4b0a5b9ee0ee4c3e2b1a0\r\n\
a=ice-ufrag:4f1c2a3b\r\n\
a=mid:0\r\n\
a=msid:{0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9} {1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809}\r\n\
a=rtcp-mux\r\n\
a=rtpmap:109 opus/48000/2\r\n\
a=rtpmap:9 G722/8000/1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000/1\r\n\
a=setup:actpass\r\n\
a=ssrc:2654302213 cname:{5c6d7e8f-9a0b-1c2d-3e4f-5a6b7c8d9e0f}\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 120 124 121 125 126 127 97 98\r\n\
c=IN IP4 0.0.0.0\r\n\
a=sendrecv\r\n\
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=extmap:4 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:5 urn:ietf:params:rtp-hdrext:toffset\r\n\
a=fmtp:126 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1\r\n\
a=fmtp:97 profile-level-id=42e01f;level-asymmetry-allowed=1\r\n\
a=fmtp:120 max-fs=12288;max-fr=60\r\n\
a=fmtp:124 apt=120\r\n\
a=fmtp:121 max-fs=12288;max-fr=60\r\n\
a=fmtp:125 apt=121\r\n\
a=fmtp:127 apt=126\r\n\
a=fmtp:98 apt=97\r\n\
a=ice-pwd:1d8fd9ddc4c4b0a5b9ee0ee4c3e2b1a0\r\n\
a=ice-ufrag:4f1c2a3b\r\n\
a=mid:1\r\n\
a=msid:{0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9} {2b3c4d5e-6f70-8192-a3b4-c5d6e7f8091a}\r\n\
a=rtcp-fb:120 nack\r\n\
a=rtcp-fb:120 nack pli\r\n\
a=rtcp-fb:120 ccm fir\r\n\
a=rtcp-fb:120 goog-remb\r\n\
a=rtcp-fb:120 transport-cc\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:120 VP8/90000\r\n\
a=rtpmap:124 rtx/90000\r\n\
a=rtpmap:121 VP9/90000\r\n\
a=rtpmap:125 rtx/90000\r\n\
a=rtpmap:126 H264/90000\r\n\
a=rtpmap:127 rtx/90000\r\n\
a=rtpmap:97 H264/90000\r\n\
a=rtpmap:98 rtx/90000\r\n\
a=setup:actpass\r\n\
a=ssrc:1410577232 cname:{5c6d7e8f-9a0b-1c2d-3e4f-5a6b7c8d9e0f}\r\n";

    /// A video-only offer: nothing an audio IVR can keep.
    pub const VIDEO_ONLY: &str = "v=0\r\n\
o=- 1 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:0\r\n\
a=rtpmap:96 VP8/90000\r\n";
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use webrtc_sdp::attribute_type::{SdpAttribute, SdpAttributeType};
    use webrtc_sdp::media_type::SdpMediaValue;

    fn local() -> Local {
        Local {
            ufrag: "Ab3dE6gH".into(),
            pwd: "0123456789abcdefABCDEF+/".into(),
            fingerprint: "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF".into(),
            session_id: 1234567890,
            version: 2,
        }
    }

    fn codecs(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// The answer, parsed by Firefox's SDP parser, failing on warnings too.
    fn parse_strictly(answer: &str) -> webrtc_sdp::SdpSession {
        match webrtc_sdp::parse_sdp(answer, true) {
            Ok(s) => s,
            Err(e) => panic!("webrtc-sdp refused the answer: {e}\n{answer}"),
        }
    }

    fn rtpmaps(m: &webrtc_sdp::media_type::SdpMedia) -> Vec<(u8, String, u32)> {
        m.get_attributes()
            .iter()
            .filter_map(|a| match a {
                SdpAttribute::Rtpmap(r) => {
                    Some((r.payload_type, r.codec_name.clone(), r.frequency))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn both_browsers_offers_parse() {
        let chrome = Offer::parse(CHROME).unwrap();
        assert_eq!(chrome.bundle, ["0", "1", "2"]);
        assert_eq!(chrome.sections.len(), 3);
        assert_eq!(chrome.sections[0].setup.as_deref(), Some("actpass"));
        assert!(chrome.sections[0].rtcp_mux);
        let firefox = Offer::parse(FIREFOX).unwrap();
        assert_eq!(firefox.sections[1].media, "video");
        assert_eq!(
            firefox.sections[0].rtpmap(101).unwrap().name,
            "telephone-event"
        );
    }

    #[test]
    fn a_chrome_offer_gets_an_audio_answer_firefoxs_parser_accepts_with_video_and_data_rejected() {
        let offer = Offer::parse(CHROME).unwrap();
        let answer = offer
            .answer(&codecs(&["opus", "PCMU", "telephone-event"]), &local())
            .unwrap();
        let session = parse_strictly(&answer);
        let media = session.media;
        assert_eq!(media.len(), 3);
        assert_eq!(*media[0].get_type(), SdpMediaValue::Audio);
        assert_eq!(media[0].get_port(), 9);
        assert_eq!(
            rtpmaps(&media[0]),
            [
                (111, "opus".to_string(), 48000),
                (0, "PCMU".to_string(), 8000),
                (110, "telephone-event".to_string(), 48000),
                (126, "telephone-event".to_string(), 8000),
            ]
        );
        assert_eq!(*media[1].get_type(), SdpMediaValue::Video);
        assert_eq!(media[1].get_port(), 0);
        assert_eq!(*media[2].get_type(), SdpMediaValue::Application);
        assert_eq!(media[2].get_port(), 0);
        let a = &media[0];
        for wanted in [
            SdpAttributeType::IceUfrag,
            SdpAttributeType::IcePwd,
            SdpAttributeType::Fingerprint,
            SdpAttributeType::Setup,
            SdpAttributeType::Mid,
            SdpAttributeType::Sendrecv,
            SdpAttributeType::RtcpMux,
            SdpAttributeType::Fmtp,
        ] {
            let name = wanted.to_string();
            assert!(a.get_attribute(wanted).is_some(), "{name} in\n{answer}");
        }
        assert!(answer.contains("a=ice-ufrag:Ab3dE6gH\r\n"));
        assert!(answer.contains("a=setup:active\r\n"));
        assert!(answer.contains("a=fmtp:111 minptime=10;useinbandfec=1\r\n"));
        assert!(answer.contains("a=group:BUNDLE 0\r\n"), "{answer}");
        assert!(!answer.contains("VP8"), "no video codec is kept");
    }

    #[test]
    fn a_firefox_offer_keeps_the_configured_order_and_drops_what_is_not_configured() {
        let offer = Offer::parse(FIREFOX).unwrap();
        let answer = offer
            .answer(&codecs(&["PCMA", "opus", "telephone-event"]), &local())
            .unwrap();
        let session = parse_strictly(&answer);
        assert_eq!(
            rtpmaps(&session.media[0]),
            [
                (8, "PCMA".to_string(), 8000),
                (109, "opus".to_string(), 48000),
                (101, "telephone-event".to_string(), 8000),
            ]
        );
        assert!(answer.starts_with("v=0\r\no=- 1234567890 2 IN IP4 127.0.0.1\r\n"));
        assert!(answer.contains("m=audio 9 UDP/TLS/RTP/SAVPF 8 109 101\r\n"));
        assert!(answer.contains("m=video 0 UDP/TLS/RTP/SAVPF 120\r\n"));
        assert!(!answer.contains("G722"));
    }

    #[test]
    fn telephone_events_only_come_at_the_rates_of_kept_codecs() {
        let offer = Offer::parse(CHROME).unwrap();
        let answer = offer
            .answer(&codecs(&["PCMU", "telephone-event"]), &local())
            .unwrap();
        assert!(
            answer.contains("m=audio 9 UDP/TLS/RTP/SAVPF 0 126\r\n"),
            "{answer}"
        );
        let without = offer.answer(&codecs(&["PCMU"]), &local()).unwrap();
        assert!(without.contains("m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"));
    }

    #[test]
    fn directions_and_dtls_roles_mirror_the_offer() {
        let hold = CHROME.replacen("a=sendrecv", "a=sendonly", 1).replacen(
            "a=setup:actpass",
            "a=setup:active",
            1,
        );
        let answer = Offer::parse(&hold)
            .unwrap()
            .answer(&codecs(&["opus"]), &local())
            .unwrap();
        parse_strictly(&answer);
        assert!(answer.contains("a=recvonly\r\n"));
        assert!(answer.contains("a=setup:passive\r\n"));
    }

    #[test]
    fn an_offer_without_a_common_codec_names_what_it_had() {
        let offer = Offer::parse(CHROME).unwrap();
        assert_eq!(
            offer.answer(&codecs(&["AMR-WB", "telephone-event"]), &local()),
            Err(AnswerError::NoCommonCodec(codecs(&[
                "opus",
                "red",
                "G722",
                "PCMU",
                "PCMA",
                "CN",
                "telephone-event"
            ])))
        );
        let video = Offer::parse(VIDEO_ONLY).unwrap();
        assert!(video.answer(&codecs(&["opus"]), &local()).is_err());
    }

    #[test]
    fn static_payload_types_need_no_rtpmap() {
        let sdp = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0 8\nc=IN IP4 10.0.0.1\n";
        let answer = Offer::parse(sdp)
            .unwrap()
            .answer(&codecs(&["PCMA", "PCMU"]), &local())
            .unwrap();
        parse_strictly(&answer);
        assert!(answer.contains("m=audio 9 RTP/AVP 8 0\r\n"));
        assert!(answer.contains("a=rtpmap:8 PCMA/8000\r\n"));
    }

    #[test]
    fn malformed_offers_are_refused_with_a_reason() {
        for (sdp, why) in [
            ("", "empty"),
            ("hello", "not of the form"),
            ("o=- 1 1 IN IP4 0.0.0.0\r\n", "does not start with v=0"),
            ("v=0\r\ns=-\r\n", "no media section"),
            ("v=0\r\nm=audio\r\n", "an m-line is"),
            ("v=0\r\nm=audio 99999 RTP/AVP 0\r\n", "an m-line is"),
            (
                "v=0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
                "a=rtpmap is",
            ),
            (
                "v=0\r\nm=audio 9 RTP/AVP 300\r\na=rtpmap:300 x/8000\r\n",
                "a=rtpmap is",
            ),
            (
                "v=0\r\nm=audio 9 RTP/AVP 0\r\na=fmtp:x y\r\n",
                "a=fmtp starts",
            ),
        ] {
            let e = Offer::parse(sdp).unwrap_err();
            assert!(e.contains(why), "{sdp:?}: {e}");
        }
        let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(MAX_SDP_BYTES / 4));
        assert!(Offer::parse(&huge).unwrap_err().contains("larger than"));
        let many = format!(
            "v=0\r\n{}",
            "m=audio 9 RTP/AVP 0\r\n".repeat(MAX_SECTIONS + 1)
        );
        assert!(Offer::parse(&many).unwrap_err().contains("media sections"));
    }
}
