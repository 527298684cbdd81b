#!/bin/bash
# Regenerates the bundled demo media (run from anywhere; needs ffmpeg >= 5).
# 4 s of testsrc2 + a 440 Hz tone, two video renditions (360p 600 kbit/s, 240p 300 kbit/s),
# 2 s GOPs cut into 2 s segments, packaged as HLS fMP4 (hls/) and DASH SegmentTemplate (dash/).
set -euo pipefail
cd "$(dirname "$0")"
FF="ffmpeg -hide_banner -loglevel error -y"
GOP="-g 60 -keyint_min 60 -sc_threshold 0"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
rm -rf hls dash
$FF -f lavfi -i testsrc2=size=640x360:rate=30:duration=4 -f lavfi -i sine=frequency=440:sample_rate=48000:duration=4 \
  -c:v libx264 -preset veryfast -pix_fmt yuv420p $GOP -b:v 600k -c:a aac -b:a 64k -shortest "$TMP/src.mp4"
SPLIT='[0:v]split=2[a][b];[a]scale=640:360[v0];[b]scale=426:240[v1]'
mkdir -p hls
$FF -i "$TMP/src.mp4" -filter_complex "$SPLIT" -map '[v0]' -map '[v1]' -map 0:a -map 0:a \
  -c:v libx264 -preset veryfast -pix_fmt yuv420p $GOP -b:v:0 600k -b:v:1 300k -c:a aac -b:a 64k \
  -f hls -hls_time 2 -hls_playlist_type vod -hls_segment_type fmp4 -hls_fmp4_init_filename init.mp4 \
  -master_pl_name master.m3u8 -var_stream_map 'v:0,a:0,name:360p v:1,a:1,name:240p' \
  -hls_segment_filename 'hls/%v/seg_%03d.m4s' 'hls/%v/index.m3u8'
mkdir -p dash
$FF -i "$TMP/src.mp4" -filter_complex "$SPLIT" -map '[v0]' -map '[v1]' -map 0:a \
  -c:v libx264 -preset veryfast -pix_fmt yuv420p $GOP -b:v:0 600k -b:v:1 300k -c:a aac -b:a 64k \
  -f dash -seg_duration 2 -use_template 1 -use_timeline 0 \
  -init_seg_name 'init-$RepresentationID$.m4s' -media_seg_name 'chunk-$RepresentationID$-$Number%05d$.m4s' \
  -adaptation_sets 'id=0,streams=v id=1,streams=a' dash/manifest.mpd
du -sh hls dash
