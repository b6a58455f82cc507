// The image service's login flows against httptest registries: Basic (what the harness registry
// does, also covered end to end by tests/integration/test_hollow_node.py) and the Bearer token
// flows no harness server speaks. Run: scripts/hollow-node.sh --test
package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const manifest = `{"schemaVersion":2,"config":{"size":10},"layers":[{"size":32}]}`

// registry serves /v2/, a token realm when bearer, and repo/manifests/v1 to `authorization`.
func registry(t *testing.T, bearer bool, authorization string) (*httptest.Server, string) {
	mux := http.NewServeMux()
	server := httptest.NewServer(mux)
	t.Cleanup(server.Close)
	refuse := func(w http.ResponseWriter) {
		if bearer {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, server.URL))
		} else {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		}
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
	}
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" || r.Header.Get("Authorization") != authorization {
			refuse(w)
			return
		}
		if r.URL.Path != "/v2/team/app/manifests/v1" || !strings.Contains(r.Header.Get("Accept"), "oci.image.manifest") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Docker-Content-Digest", "sha256:abc")
		fmt.Fprint(w, manifest)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		r.ParseForm()
		scope := r.Form.Get("scope") == "repository:team/app:pull" && r.Form.Get("service") == "test"
		switch {
		case scope && r.Method == http.MethodGet && user == "u" && pass == "p":
			fmt.Fprint(w, `{"token":"T"}`)
		case scope && r.Method == http.MethodPost && r.PostForm.Get("refresh_token") == "R":
			fmt.Fprint(w, `{"access_token":"T"}`)
		default:
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad login"}]}`)
		}
	})
	return server, strings.TrimPrefix(server.URL, "http://")
}

func TestLogins(t *testing.T) {
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("u:p"))
	cases := []struct {
		name   string
		bearer bool
		auth   *runtimeapi.AuthConfig
		fails  string
	}{
		{"basic", false, &runtimeapi.AuthConfig{Username: "u", Password: "p"}, ""},
		{"basic from auth", false, &runtimeapi.AuthConfig{Auth: base64.StdEncoding.EncodeToString([]byte("u:p"))}, ""},
		{"basic, wrong password", false, &runtimeapi.AuthConfig{Username: "u", Password: "x"}, "401 Unauthorized: unauthorized: authentication required"},
		{"basic, no login", false, nil, "GET /v2/team/app/manifests/v1: 401 Unauthorized: unauthorized: authentication required"},
		{"bearer", true, &runtimeapi.AuthConfig{Username: "u", Password: "p"}, ""},
		{"bearer from identity token", true, &runtimeapi.AuthConfig{IdentityToken: "R"}, ""},
		{"bearer from registry token", true, &runtimeapi.AuthConfig{RegistryToken: "T"}, ""},
		{"bearer, wrong password", true, &runtimeapi.AuthConfig{Username: "u", Password: "x"}, "/token: 401 Unauthorized: unauthorized: bad login"},
		{"bearer, no login", true, nil, "/token: 401 Unauthorized"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := basic
			if c.bearer {
				want = "Bearer T"
			}
			_, host := registry(t, c.bearer, want)
			images := newRegistryImages(hostList{host: true})
			ref := host + "/team/app:v1"
			id, err := images.PullImage(context.Background(), &runtimeapi.ImageSpec{Image: ref}, c.auth, nil)
			status, _ := images.ImageStatus(context.Background(), &runtimeapi.ImageSpec{Image: ref}, false)
			if c.fails != "" {
				if err == nil || !strings.Contains(err.Error(), c.fails) {
					t.Fatalf("want an error with %q, got %v", c.fails, err)
				}
				if status.Image != nil {
					t.Fatalf("a refused pull is in the store: %v", status.Image)
				}
				return
			}
			if err != nil || id != "sha256:abc" {
				t.Fatalf("PullImage = %q, %v", id, err)
			}
			if status.Image == nil || status.Image.Size != 42 || status.Image.RepoTags[0] != ref {
				t.Fatalf("ImageStatus after the pull: %v", status.Image)
			}
			if byID, _ := images.ImageStatus(context.Background(), &runtimeapi.ImageSpec{Image: id}, false); byID.Image != status.Image {
				t.Fatalf("ImageStatus by ID: %v", byID.Image)
			}
		})
	}
}
