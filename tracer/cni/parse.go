package cni

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// Call is what the runtime told a plugin in its environment (the CNI spec's parameters).
type Call struct {
	Command     string // CNI_COMMAND
	ContainerID string // CNI_CONTAINERID
	NetNS       string // CNI_NETNS
	IfName      string // CNI_IFNAME
	Args        string // CNI_ARGS
	Path        string // CNI_PATH
	// From CNI_ARGS, as Kubernetes runtimes set them.
	Pod, K8sNamespace, PodUID string
}

// parseEnv reads the CNI variables of a NUL-separated environment. A variable given twice has its
// first value, as the plugin's getenv sees it (glibc's and Go's).
func parseEnv(env []byte) Call {
	var c Call
	seen := map[string]bool{}
	for len(env) > 0 {
		kv := env
		if i := bytes.IndexByte(env, 0); i >= 0 {
			kv, env = env[:i], env[i+1:]
		} else {
			env = nil
		}
		k, v, ok := bytes.Cut(kv, []byte{'='})
		if !ok || !bytes.HasPrefix(k, []byte("CNI_")) || seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		switch string(k) {
		case "CNI_COMMAND":
			c.Command = string(v)
		case "CNI_CONTAINERID":
			c.ContainerID = string(v)
		case "CNI_NETNS":
			c.NetNS = string(v)
		case "CNI_IFNAME":
			c.IfName = string(v)
		case "CNI_ARGS":
			c.Args = string(v)
		case "CNI_PATH":
			c.Path = string(v)
		}
	}
	for _, kv := range strings.Split(c.Args, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "K8S_POD_NAME":
			c.Pod = v
		case "K8S_POD_NAMESPACE":
			c.K8sNamespace = v
		case "K8S_POD_UID":
			c.PodUID = v
		}
	}
	return c
}

// PodKey names the pod the call is for ("namespace/name"), or "" when CNI_ARGS does not say.
func (c *Call) PodKey() string {
	if c.Pod == "" {
		return ""
	}
	return c.K8sNamespace + "/" + c.Pod
}

// Error is a CNI error, as a plugin prints it on stdout.
type Error struct {
	Code    int    `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details,omitempty"`
}

func (e *Error) String() string {
	s := "[" + strconv.Itoa(e.Code) + "] " + e.Msg
	if e.Details != "" {
		s += ": " + e.Details
	}
	return s
}

// Printed is what a plugin printed on stdout: a result, a CNI error, or neither.
type Printed struct {
	Result []byte // the JSON result, compacted
	Error  *Error
	Text   string // stdout when it is not JSON
}

// parseStdout reads a plugin's stdout. A CNI error is an object with a code and a msg; any other
// JSON object is a result.
func parseStdout(out []byte) Printed {
	trimmed := bytes.TrimSpace(out)
	if len(trimmed) == 0 {
		return Printed{}
	}
	var probe struct {
		Code    *int   `json:"code"`
		Msg     string `json:"msg"`
		Details string `json:"details"`
	}
	if trimmed[0] != '{' || json.Unmarshal(trimmed, &probe) != nil {
		return Printed{Text: string(out)}
	}
	if probe.Code != nil && probe.Msg != "" {
		return Printed{Error: &Error{Code: *probe.Code, Msg: probe.Msg, Details: probe.Details}}
	}
	var b bytes.Buffer
	if json.Compact(&b, trimmed) != nil {
		return Printed{Text: string(out)}
	}
	return Printed{Result: b.Bytes()}
}

// summary is a result in a few words: "10.88.0.5/16 on eth0", or the versions a VERSION answers.
func summary(result []byte) string {
	var r struct {
		IPs []struct {
			Address   string `json:"address"`
			Interface *int   `json:"interface"`
		} `json:"ips"`
		Interfaces []struct {
			Name    string `json:"name"`
			Sandbox string `json:"sandbox"`
		} `json:"interfaces"`
		IP4 *struct {
			IP string `json:"ip"`
		} `json:"ip4"`
		Supported []string `json:"supportedVersions"`
	}
	if json.Unmarshal(result, &r) != nil {
		return ""
	}
	var parts []string
	for _, ip := range r.IPs {
		s := ip.Address
		if ip.Interface != nil && *ip.Interface >= 0 && *ip.Interface < len(r.Interfaces) {
			s += " on " + r.Interfaces[*ip.Interface].Name
		}
		parts = append(parts, s)
	}
	if r.IP4 != nil {
		parts = append(parts, r.IP4.IP)
	}
	if len(parts) == 0 {
		for _, i := range r.Interfaces {
			if i.Sandbox != "" {
				parts = append(parts, i.Name)
			}
		}
	}
	if len(r.Supported) > 0 {
		parts = append(parts, "versions "+strings.Join(r.Supported, ","))
	}
	return strings.Join(parts, ", ")
}
