// Package e2e stands up a real Kubernetes control plane on loopback for make e2e: etcd (Debian's
// etcd-server), kube-apiserver, kube-controller-manager, kube-scheduler and a kubelet (built from
// the release e2e/kubebin pins) whose runtime is a private containerd's CRI plugin. Nothing is a
// stand-in: pods are created through the API server, scheduled, and run by the kubelet.
package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"golang.org/x/sys/unix"
)

// NodeName is the one node's name: its address, so that the kubelet gives the node the address
// 127.0.0.1 (--node-ip refuses loopback addresses; a name given as an IP does not), where the API
// server reaches it for exec and logs.
const NodeName = "127.0.0.1"

// Cluster is a running control plane with one node.
type Cluster struct {
	Dir        string
	Bin        string // the directory of the Kubernetes binaries and etcd
	Kubeconfig string
	Daemon     *containertest.Daemon // the node's containerd
	procs      []*proc
	created    []string // host directories the kubelet makes whatever its flags say
}

// kubeletFixedPaths are directories the kubelet creates outside its --root-dir and podLogsDir.
var kubeletFixedPaths = []string{"/var/lib/kubelet", "/var/log/containers"}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
}

// Start runs the control plane and the node, and waits until the node is Ready. Everything is
// stopped, and the kubelet's mounts undone, at the end of the test.
func Start(t *testing.T) *Cluster {
	t.Helper()
	bin := os.Getenv("GHOSTWATCH_E2E_BIN")
	if bin == "" {
		t.Fatal("GHOSTWATCH_E2E_BIN is not set: run make e2e, which builds the binaries")
	}
	d := containertest.StartCRI(t, containertest.CRIConfig{})
	dir, err := os.MkdirTemp("", "gw-e2e") // short: the kubelet's unix sockets live below it
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Dir: dir, Bin: bin, Kubeconfig: filepath.Join(dir, "kubeconfig"), Daemon: d}
	for _, p := range kubeletFixedPaths {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			c.created = append(c.created, p)
		}
	}
	t.Cleanup(func() { c.stop(t) })

	etcdClient, etcdPeer, apiPort, kubeletPort := freePort(t), freePort(t), freePort(t), freePort(t)
	token := randomHex(t)
	c.write(t, "tokens.csv", fmt.Sprintf("%s,admin,admin,\"system:masters\"\n", token))
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	c.write(t, "sa.key", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	c.write(t, "sa.pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})))
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	c.write(t, "kubeconfig", fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: %q}}]
contexts: [{name: e2e, context: {cluster: e2e, user: admin}}]
current-context: e2e
`, server, token))

	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	c.run(t, "etcd", "--data-dir", c.path("etcd"), "--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "default="+peerURL)
	c.waitHTTP(t, "etcd", etcdURL+"/health", "")

	c.run(t, "kube-apiserver", "--etcd-servers", etcdURL, "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(apiPort), "--cert-dir", c.path("apiserver"), "--token-auth-file", c.path("tokens.csv"),
		"--authorization-mode", "Node,RBAC", "--allow-privileged=true", "--service-cluster-ip-range", "10.96.0.0/24",
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", c.path("sa.pub"),
		"--service-account-signing-key-file", c.path("sa.key"), "--kubelet-preferred-address-types", "InternalIP",
		"--enable-priority-and-fairness=false")
	c.waitHTTP(t, "kube-apiserver", server+"/readyz", token)

	common := []string{"--kubeconfig", c.Kubeconfig, "--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", "0"}
	c.run(t, "kube-controller-manager", append(common, "--service-account-private-key-file", c.path("sa.key"),
		"--root-ca-file", c.path("apiserver", "apiserver.crt"), "--use-service-account-credentials=false")...)
	c.run(t, "kube-scheduler", common...)

	// cgroupsPerQOS off: no kubepods hierarchy is left in the host's cgroups. Eviction and image
	// garbage collection off: the imported images cannot be pulled again.
	c.write(t, "kubelet.yaml", fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzPort: 0
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
containerRuntimeEndpoint: unix://%s
podLogsDir: %s
resolvConf: ""
`, kubeletPort, d.Socket, c.path("pods")))
	c.run(t, "kubelet", "--config", c.path("kubelet.yaml"), "--kubeconfig", c.Kubeconfig, "--root-dir", c.path("kubelet"),
		"--cert-dir", c.path("kubelet-pki"), "--hostname-override", NodeName)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, _ := c.KubectlErr("get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if out == "True" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not Ready within 2m (%q)\n%s", NodeName, out, c.Logs("kubelet"))
		}
		time.Sleep(time.Second) // the API server is asked, as kubectl wait would
	}
	return c
}

func (c *Cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.Dir}, elem...)...)
}

func (c *Cluster) write(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(c.path(name), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// run starts one of the binaries, its output into DIR/NAME.log.
func (c *Cluster) run(t *testing.T, name string, args ...string) {
	t.Helper()
	p := &proc{name: name, log: c.path(name + ".log")}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p.cmd = exec.Command(filepath.Join(c.Bin, name), args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	c.procs = append(c.procs, p)
}

// Logs returns the end of a component's log, for failures.
func (c *Cluster) Logs(name string) string {
	data, _ := os.ReadFile(c.path(name + ".log"))
	if len(data) > 8000 {
		data = data[len(data)-8000:]
	}
	return fmt.Sprintf("--- %s log (end) ---\n%s", name, data)
}

// waitHTTP waits until url answers 200.
func (c *Cluster) waitHTTP(t *testing.T, name, url, token string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 at %s within 90s: %v\n%s", name, url, err, c.Logs(name))
		}
		time.Sleep(200 * time.Millisecond) // a server gives no other sign that it is ready
	}
}

// Kubectl runs kubectl against the cluster and returns its output; an error fails the test.
func (c *Cluster) Kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.KubectlErr(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// KubectlErr runs kubectl and returns its output (stdout and stderr) and error.
func (c *Cluster) KubectlErr(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(c.Bin, "kubectl"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// stop deletes every pod through the API server so that the kubelet undoes their mounts, then
// stops the components, newest first, unmounts whatever the kubelet left and removes the host
// directories it made.
func (c *Cluster) stop(t *testing.T) {
	if t.Failed() {
		for _, p := range c.procs {
			t.Log(c.Logs(p.name))
		}
	}
	if len(c.procs) == 5 {
		c.KubectlErr("delete", "daemonsets,pods", "--all", "--all-namespaces", "--wait", "--timeout", "60s")
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
	}
	unmountUnder(c.Dir)
	os.RemoveAll(c.Dir)
	for _, p := range c.created {
		os.RemoveAll(p)
	}
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		unix.Unmount(points[i], unix.MNT_DETACH)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
