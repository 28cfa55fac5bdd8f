package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StatusDeadline is how long Check waits for each of Version and Status: the kubelet's own
// calls time out after 2 minutes, and a node whose runtime takes seconds is already in trouble.
const StatusDeadline = 2 * time.Second

// Health is a runtime's answer to RuntimeService/Status, the call from which the kubelet decides
// that "container runtime is down" or "network plugin not ready".
type Health struct {
	Socket  string
	Runtime string // containerd, cri-o: as its Version says; "" when it did not answer
	// Answered is true when Status answered; Error says why not, TimedOut when because the
	// deadline passed (a runtime that accepts calls and does not answer them).
	Answered bool
	TimedOut bool
	Error    string
	// Took is how long the call that decided took: Status, or Version when that failed.
	Took         time.Duration
	RuntimeReady bool
	NetworkReady bool
	// NotReady are the conditions that are not true, with the runtime's reason and message.
	NotReady []Condition
}

// Condition is a runtime condition that is not true.
type Condition struct {
	Type    string `json:"type"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Check asks the CRI at socket for its Version, then for its Status, each within deadline.
func Check(ctx context.Context, socket string, deadline time.Duration) Health {
	h := Health{Socket: socket}
	start := time.Now()
	c, err := dial(ctx, socket, deadline)
	if err != nil {
		h.Took = time.Since(start)
		h.Error, h.TimedOut = err.Error(), errors.Is(err, context.DeadlineExceeded)
		return h
	}
	defer c.Close()
	h.Runtime = c.Name
	sctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	start = time.Now()
	resp, err := c.Runtime.Status(sctx, &runtimeapi.StatusRequest{})
	h.Took = time.Since(start)
	if err != nil {
		h.TimedOut = sctx.Err() == context.DeadlineExceeded
		h.Error = fmt.Sprintf("CRI Status: %v", err)
		if h.TimedOut {
			h.Error = fmt.Sprintf("CRI Status did not answer within %v", deadline)
		}
		return h
	}
	h.Answered = true
	for _, cond := range resp.GetStatus().GetConditions() {
		switch cond.Type {
		case runtimeapi.RuntimeReady:
			h.RuntimeReady = cond.Status
		case runtimeapi.NetworkReady:
			h.NetworkReady = cond.Status
		}
		if !cond.Status {
			h.NotReady = append(h.NotReady, Condition{cond.Type, cond.Reason, cond.Message})
		}
	}
	return h
}

// Sockets are the CRI sockets of a node: containerd's own socket (its CRI plugin) and CRI-O's,
// if it is there.
func Sockets(containerdSocket string) []string {
	sockets := []string{containerdSocket}
	if _, err := os.Stat(CRIOSocket); err == nil && CRIOSocket != containerdSocket {
		sockets = append(sockets, CRIOSocket)
	}
	return sockets
}
