// Package cri talks to a container runtime through the Kubernetes Container Runtime Interface
// (runtime.v1 over its unix socket): containerd's CRI plugin or CRI-O. It reads what the kubelet
// asked for, in the kubelet's own words: pods with their name, namespace and uid, containers with
// their name and attempt, and where each pod's namespaces are (a process, or bind mounts that pin
// them when no process does).
package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRIOSocket is where CRI-O serves the CRI by default (containerd serves it on its API socket).
const CRIOSocket = "/run/crio/crio.sock"

// Client is a connection to one runtime's CRI.
type Client struct {
	conn    *grpc.ClientConn
	Runtime runtimeapi.RuntimeServiceClient
	Name    string // the runtime's name as its Version says: containerd, cri-o
}

// Dial connects to the CRI at socket and asks its version, which fails fast for a socket that
// is not there, not answering, or a containerd with its CRI plugin disabled.
func Dial(ctx context.Context, socket string) (*Client, error) {
	return dial(ctx, socket, StatusDeadline)
}

func dial(ctx context.Context, socket string, deadline time.Duration) (*Client, error) {
	if _, err := os.Stat(socket); err != nil {
		return nil, fmt.Errorf("CRI not reachable: no socket at %s", socket)
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("CRI at %s: %w", socket, err)
	}
	c := &Client{conn: conn, Runtime: runtimeapi.NewRuntimeServiceClient(conn)}
	vctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	v, err := c.Runtime.Version(vctx, &runtimeapi.VersionRequest{})
	if err != nil {
		conn.Close()
		if vctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("the CRI Version call did not answer within %v: %w", deadline, vctx.Err())
		}
		return nil, fmt.Errorf("CRI not reachable at %s: %w", socket, err)
	}
	c.Name = v.RuntimeName
	return c, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Pod is a pod sandbox.
type Pod struct {
	ID        string
	Name      string
	Namespace string
	UID       string
	Ready     bool
	// Pid is the sandbox's process (pause), 0 if there is none or it is gone.
	Pid uint32
	// NSPaths maps namespace types (the OCI spec's: network, ipc, uts, pid...) to the paths that
	// pin them, as the sandbox's runtime spec names them. With no pause process they are all
	// that holds the pod's namespaces.
	NSPaths map[string]string
}

// Container is a container of a pod.
type Container struct {
	ID      string
	PodID   string
	Name    string
	Attempt uint32
	Image   string
	Running bool
	Pid     uint32 // its init on the host, 0 if not known
}

// verboseInfo is what containerd and CRI-O put under "info" in a verbose status.
type verboseInfo struct {
	Pid         uint32 `json:"pid"`
	RuntimeSpec *struct {
		Linux *struct {
			Namespaces []struct {
				Type string `json:"type"`
				Path string `json:"path"`
			} `json:"namespaces"`
		} `json:"linux"`
	} `json:"runtimeSpec"`
}

func parseInfo(info map[string]string) verboseInfo {
	var v verboseInfo
	if s, ok := info["info"]; ok {
		json.Unmarshal([]byte(s), &v) // best effort: a runtime may leave fields out
	}
	return v
}

// Pods lists the pod sandboxes, ready or not (a sandbox whose pause has exited still pins its
// namespaces until it is stopped).
func (c *Client) Pods(ctx context.Context) ([]Pod, error) {
	resp, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, fmt.Errorf("CRI ListPodSandbox: %w", err)
	}
	var pods []Pod
	for _, s := range resp.Items {
		p := Pod{ID: s.Id, Ready: s.State == runtimeapi.PodSandboxState_SANDBOX_READY}
		if m := s.Metadata; m != nil {
			p.Name, p.Namespace, p.UID = m.Name, m.Namespace, m.Uid
		}
		st, err := c.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: s.Id, Verbose: true})
		if err != nil {
			continue // removed since the list
		}
		info := parseInfo(st.Info)
		p.Pid = info.Pid
		if info.RuntimeSpec != nil && info.RuntimeSpec.Linux != nil {
			for _, ns := range info.RuntimeSpec.Linux.Namespaces {
				if ns.Path != "" {
					if p.NSPaths == nil {
						p.NSPaths = map[string]string{}
					}
					p.NSPaths[ns.Type] = ns.Path
				}
			}
		}
		pods = append(pods, p)
	}
	return pods, nil
}

// Containers lists the containers; known says which ids need no status call again (their
// pid and image are already known), so that a periodic scan costs one call.
func (c *Client) Containers(ctx context.Context, known func(id string) bool) ([]Container, error) {
	resp, err := c.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("CRI ListContainers: %w", err)
	}
	var out []Container
	for _, r := range resp.Containers {
		ct := Container{ID: r.Id, PodID: r.PodSandboxId, Running: r.State == runtimeapi.ContainerState_CONTAINER_RUNNING}
		if m := r.Metadata; m != nil {
			ct.Name, ct.Attempt = m.Name, m.Attempt
		}
		if r.Image != nil {
			ct.Image = r.Image.UserSpecifiedImage
			if ct.Image == "" {
				ct.Image = r.Image.Image
			}
		}
		if ct.Running && (known == nil || !known(r.Id)) {
			st, err := c.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: r.Id, Verbose: true})
			if err == nil {
				ct.Pid = parseInfo(st.Info).Pid
			}
		}
		out = append(out, ct)
	}
	return out, nil
}
