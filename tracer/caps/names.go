package caps

import (
	"strconv"

	"github.com/ghostwatch/ghostwatch/tracer/encode"
)

// capNames are the kernel's capability numbers (include/uapi/linux/capability.h), a fixed ABI.
var capNames = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// capName names a capability; one this table does not know is "CAP_<n>".
func capName(c int32) string {
	if c >= 0 && int(c) < len(capNames) {
		return capNames[c]
	}
	return "CAP_" + strconv.Itoa(int(c))
}

// set is a capability set as the kernel keeps it: bit n is capability n.
type set uint64

// appendNames appends the names in s as a JSON array, without building a slice.
func (s set) appendJSON(j *encode.JSON, key string) {
	j.Key(key)
	j.B = append(j.B, '[')
	first := true
	for c := int32(0); c < 64; c++ {
		if s&(1<<c) == 0 {
			continue
		}
		if !first {
			j.B = append(j.B, ',')
		}
		first = false
		j.B = encode.AppendString(j.B, capName(c))
	}
	j.B = append(j.B, ']')
}

// appendText appends the names in s, lower case and comma separated, as setcap writes them.
func (s set) appendText(b []byte) []byte {
	first := true
	for c := int32(0); c < 64; c++ {
		if s&(1<<c) == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		for _, r := range capName(c) {
			if r >= 'A' && r <= 'Z' {
				r += 'a' - 'A'
			}
			b = append(b, byte(r))
		}
	}
	if first {
		b = append(b, "none"...)
	}
	return b
}

// String lists the names, as setcap writes them.
func (s set) String() string { return string(s.appendText(nil)) }
