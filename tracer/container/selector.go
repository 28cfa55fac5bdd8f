package container

import (
	"fmt"
	"regexp"
	"strings"
)

// Selector picks containers as the CLI's filters say. Values within a field are alternatives;
// fields must all match.
type Selector struct {
	Containers   []string // id prefix or name
	Pods         []string
	K8sNamespace string
	Host         bool // host processes only: every container is excluded
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)

// Validate rejects what cannot name a container, pod or namespace, and contradictory filters.
func (s Selector) Validate() error {
	if s.Host && (len(s.Containers) > 0 || len(s.Pods) > 0 || s.K8sNamespace != "") {
		return fmt.Errorf("--host selects host processes only: it cannot be combined with container filters")
	}
	for _, v := range append(append([]string{}, s.Containers...), s.Pods...) {
		if !validName.MatchString(v) || len(v) > 253 {
			return fmt.Errorf("%q is not a container id, container name or pod name", v)
		}
	}
	if s.K8sNamespace != "" && !validName.MatchString(s.K8sNamespace) {
		return fmt.Errorf("%q is not a Kubernetes namespace name", s.K8sNamespace)
	}
	return nil
}

// Active tells whether the selector selects containers at all.
func (s Selector) Active() bool {
	return len(s.Containers) > 0 || len(s.Pods) > 0 || s.K8sNamespace != ""
}

// Matches tells whether a container is selected.
func (s Selector) Matches(c *Container) bool {
	if len(s.Containers) > 0 && !anyOf(s.Containers, func(v string) bool {
		return strings.HasPrefix(c.ID, v) || (c.Name != "" && c.Name == v)
	}) {
		return false
	}
	if len(s.Pods) > 0 && !anyOf(s.Pods, func(v string) bool { return c.Pod == v }) {
		return false
	}
	return s.K8sNamespace == "" || c.K8sNamespace == s.K8sNamespace
}

func anyOf(vals []string, f func(string) bool) bool {
	for _, v := range vals {
		if f(v) {
			return true
		}
	}
	return false
}

// SyncFilter keeps a kernel list of mount namespaces current as containers come and go: with
// Host, every container's; otherwise the selected containers'. set updates the kernel list;
// errors go to onErr. It stops when the returned function is called, before the list is closed.
func SyncFilter(coll *Collection, s Selector, set func(mntns uint32, listed bool) error, onErr func(error)) (stop func()) {
	return coll.Subscribe(func(ch Change) {
		mnt := ch.Container.NS["mnt"]
		if mnt == 0 || mnt == coll.host["mnt"] || !(s.Host || s.Matches(ch.Container)) {
			return
		}
		if err := set(mnt, !ch.Removed); err != nil && onErr != nil {
			onErr(err)
		}
	})
}
