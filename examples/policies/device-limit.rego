# Device-class limits: UHD renditions only on TVs and desktops, no crawlers at all.
# input.client.device is one of desktop, mobile, tablet, tv, bot, other (from the
# User-Agent; undefined when there is none).
package streamgate

uhd_devices := {"tv", "desktop"}

default allow := false

allow if {
	not input.client.device == "bot"
	not uhd_path
}

allow if {
	uhd_path
	uhd_devices[input.client.device]
}

uhd_path if contains(input.path, "/2160p/")

reason := "automated clients may not stream" if input.client.device == "bot"
else := sprintf("4K renditions are for TVs and desktops, not %s", [object.get(input.client, "device", "unknown devices")]) if uhd_path
