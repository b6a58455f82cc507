// write-floor makes the writes of a syncd rollout from a Go program with client-go, the way a Go
// operator (External Secrets, Vault Secrets Operator) writes: one HTTP/2 connection, the admin
// client certificate, no client rate limit, `concurrency` goroutines. bench/ runs it as the
// apiserver's own write floor beside its Python one (bench/rawkube.py). Built by
// scripts/write-floor.sh against k8s.io/client-go (the version the harness's Kubernetes uses).
//
// stdin: {"server": "https://127.0.0.1:PORT", "ca": "...", "cert": "...", "key": "...",
//
//	"namespaces": ["bench-00000", ...], "concurrency": 32,
//	"secret": "regcred",
//	"secret_patch": {...},    // rotation: a JSON merge patch of each namespace's Secret `secret`
//	"secret_create": {...},   // first rollout: the Secret created in each namespace (no namespace in it)
//	"account": "default", "account_patch": {...}}  // ... then a merge patch of that ServiceAccount
//
// Per namespace, in this order: the Secret create (if secret_create), the Secret patch (if
// secret_patch), the ServiceAccount patch (if account_patch). stdout: {"seconds": S, "requests": N,
// "errors": E, "first_error": "..."}, S from just before the first request to the last answer
// (process start and reading the input excluded; the one TLS handshake included).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

type input struct {
	Server       string          `json:"server"`
	CA           string          `json:"ca"`
	Cert         string          `json:"cert"`
	Key          string          `json:"key"`
	Namespaces   []string        `json:"namespaces"`
	Concurrency  int             `json:"concurrency"`
	Secret       string          `json:"secret"`
	SecretPatch  json.RawMessage `json:"secret_patch"`
	SecretCreate *v1.Secret      `json:"secret_create"`
	Account      string          `json:"account"`
	AccountPatch json.RawMessage `json:"account_patch"`
}

type output struct {
	Seconds    float64 `json:"seconds"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
}

type run struct {
	in       input
	client   kubernetes.Interface
	requests atomic.Int64
	errors   atomic.Int64
	first    sync.Once
	firstErr string
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fail(fmt.Errorf("reading the input: %w", err))
	}
	config := &rest.Config{
		Host:            in.Server,
		TLSClientConfig: rest.TLSClientConfig{CAFile: in.CA, CertFile: in.Cert, KeyFile: in.Key},
		QPS:             -1, // no client-side rate limit: the apiserver is what is measured
		Timeout:         60 * time.Second,
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		fail(err)
	}
	r := &run{in: in, client: client}
	work := make(chan string)
	var done sync.WaitGroup
	started := time.Now()
	for i := 0; i < max(1, in.Concurrency); i++ {
		done.Add(1)
		go func() {
			defer done.Done()
			for namespace := range work {
				r.namespace(namespace)
			}
		}()
	}
	for _, namespace := range in.Namespaces {
		work <- namespace
	}
	close(work)
	done.Wait()
	out := output{time.Since(started).Seconds(), r.requests.Load(), r.errors.Load(), r.firstErr}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func (r *run) namespace(namespace string) {
	ctx := context.Background()
	if r.in.SecretCreate != nil {
		secret := r.in.SecretCreate.DeepCopy()
		secret.Namespace = namespace
		_, err := r.client.CoreV1().Secrets(namespace).Create(ctx, secret, metav1.CreateOptions{})
		r.count(err)
	}
	if len(r.in.SecretPatch) > 0 {
		_, err := r.client.CoreV1().Secrets(namespace).Patch(
			ctx, r.in.Secret, types.MergePatchType, r.in.SecretPatch, metav1.PatchOptions{})
		r.count(err)
	}
	if len(r.in.AccountPatch) > 0 {
		_, err := r.client.CoreV1().ServiceAccounts(namespace).Patch(
			ctx, r.in.Account, types.MergePatchType, r.in.AccountPatch, metav1.PatchOptions{})
		r.count(err)
	}
}

func (r *run) count(err error) {
	r.requests.Add(1)
	if err != nil {
		r.errors.Add(1)
		r.first.Do(func() { r.firstErr = err.Error() })
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "write-floor:", err)
	os.Exit(1)
}
