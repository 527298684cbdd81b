//! Corpus files whose verdict conflicts with other corpus files of the same shape (shared by
//! the corpus tests).

/// Files whose corpus verdict conflicts with other corpus files, and why.
pub const KNOWN_CONFLICTS: &[(&str, &str)] = &[
    (
        "hls/comcast-mamba/hls_writer_parser_roundtrip_tester.m3u8",
        "marked valid, but the fixture says it 'does not have to make sense': master and media tags mixed, \
         segments after EXT-X-ENDLIST, EXT-X-VERSION twice (once NOT_A_VALID_VALUE), EXT-X-PLAYLIST-TYPE three times \
         (once DISALLOWED_VALUE), EXT-X-ALLOW-CACHE:DISALLOWED_VALUE - each of these is the sole reason of an invalid file",
    ),
    (
        "hls/hlsjs/error-controller__switches-to-fallback-variants-after-media-track-error__2.m3u8",
        "marked valid, but it is hls.js' `varSubErrorMultivariantPlaylist.m3u8` fixture: {$foobar} with no \
         EXT-X-DEFINE, the same shape as the invalid 'variable-reference-has-no-definition' files",
    ),
    (
        "hls/hlsjs/error-controller__switches-to-fallback-variants-after-media-track-error__5.m3u8",
        "marked valid, but it is hls.js' `varSubErrorMediaPlaylist.m3u8` fixture: {$foobar} with no EXT-X-DEFINE",
    ),
    (
        "hls/globocom-m3u8/invalid/simple_playlist_commaless_extinf.m3u8",
        "marked invalid for '#EXTINF:5220' without a comma, but 31 valid files have comma-less EXTINF \
         (hls.js 'parse level with EXTINF line without comma', videojs dateTime.m3u8 has the very same shape)",
    ),
    (
        "hls/globocom-m3u8/invalid/m3u8_rule_floating_point.m3u8",
        "marked invalid for a fractional EXTINF with EXT-X-VERSION 2, but valid hls.js files have the same \
         (VERSION:2 with EXTINF:9.40; VERSION:1 with fractional durations), and many valid files omit VERSION",
    ),
    (
        "hls/globocom-m3u8/invalid/m3u8_rule_iv.m3u8",
        "marked invalid for IV with EXT-X-VERSION 1, but valid hls.js files have EXT-X-KEY IV with VERSION:1 \
         (parse-AES-256-and-AES-256-CTR-encrypted-URLs-with-explicit-IV, Init-segment-decrypt-errors...)",
    ),
    (
        "hls/globocom-m3u8/invalid/m3u8_rule_byte_range.m3u8",
        "marked invalid for EXT-X-BYTERANGE with EXT-X-VERSION 3, but five valid files do the same \
         (videojs byteRange/extinf/llhls-byte-range/llhls-delta-byte-range, hls.js parses-segment-tags...)",
    ),
    (
        "hls/hlsjs/invalid/m3u8-parser__fails-to-parse-Media-Playlist-when-IMPORT-variable-is-not-present.m3u8",
        "hls.js rejects it only because its test passes no multivariant playlist; two valid hls.js files IMPORT \
         a variable the same way, and a single-playlist validator cannot see the multivariant playlist",
    ),
];
