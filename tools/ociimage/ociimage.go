// Package ociimage writes OCI image archives from files on disk, with no registry and no container
// daemon (go-containerregistry as a library). The same inputs give the same bytes, so the same
// digest: every timestamp is the epoch, every owner root, every list sorted.
package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one regular file of an image, read from Source.
type File struct {
	Path   string // in the image, without a leading slash: usr/bin/ghostwatch
	Source string // on disk
	Mode   int64
	// Xattrs are extended attributes (PAX SCHILY.xattr records), which containerd sets when it
	// unpacks the layer: security.capability gives a file capabilities.
	Xattrs map[string]string
}

// Platform is one architecture's image.
type Platform struct {
	Arch  string // GOARCH: amd64, arm64
	Files []File
	Dirs  []string // empty directories to create (mount points), e.g. tmp
}

// Spec describes a possibly multi-architecture image.
type Spec struct {
	// Name is what containerd imports it as: a short name such as ghostwatch:latest is
	// normalised as the CRI and ctr normalise it (docker.io/library/ghostwatch:latest).
	Name       string
	Entrypoint []string
	Cmd        []string
	Env        []string
	Labels     map[string]string
	Platforms  []Platform
}

// epoch is every timestamp in the image, so that its digest depends on its contents alone.
var epoch = time.Unix(0, 0).UTC()

// Write writes s as an OCI image layout archive (what `ctr image import` reads) and returns the
// digest of its index, the image's digest once imported.
func Write(w io.Writer, s Spec) (v1.Hash, error) {
	if len(s.Platforms) == 0 {
		return v1.Hash{}, fmt.Errorf("image %s: no platform", s.Name)
	}
	full, tag, err := names(s.Name)
	if err != nil {
		return v1.Hash{}, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range s.Platforms {
		img, err := platformImage(s, p)
		if err != nil {
			return v1.Hash{}, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: p.Arch}},
		})
	}
	digest, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	dir, err := os.MkdirTemp("", "ociimage")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(dir)
	l, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, err
	}
	err = l.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          full,
		"org.opencontainers.image.ref.name": tag,
	}))
	if err != nil {
		return v1.Hash{}, err
	}
	return digest, tarDir(w, dir)
}

func platformImage(s Spec, p Platform) (v1.Image, error) {
	var layer bytes.Buffer
	if err := rootfs(&layer, p); err != nil {
		return nil, err
	}
	b := layer.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, l); err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", p.Arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{Entrypoint: s.Entrypoint, Cmd: s.Cmd, Env: s.Env, Labels: s.Labels}
	return mutate.ConfigFile(img, cf)
}

// rootfs writes the platform's single layer: its directories, then its files, in path order.
func rootfs(w io.Writer, p Platform) error {
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	for _, f := range p.Files {
		for d := path.Dir(f.Path); d != "." && d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range p.Dirs {
		dirs[d] = true
	}
	names := make([]string, 0, len(dirs))
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: mode, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	files := append([]File(nil), p.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		data, err := os.ReadFile(f.Source)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: f.Path, Typeflag: tar.TypeReg, Mode: f.Mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}
		for k, v := range f.Xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// tarDir archives the layout directory written by go-containerregistry.
func tarDir(w io.Writer, dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if err := writeFile(tw, filepath.ToSlash(rel), data, 0o644); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeFile(tw *tar.Writer, name string, data []byte, mode int64) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// names gives the name containerd stores the image under, spelt as the CRI looks it up
// (ghostwatch:latest is docker.io/library/ghostwatch:latest), and its tag.
func names(name string) (full, tag string, err error) {
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", "", fmt.Errorf("image name %q: %w", name, err)
	}
	tagged, ok := reference.TagNameOnly(ref).(reference.Tagged)
	if !ok {
		return "", "", fmt.Errorf("image name %q: a tag, not a digest", name)
	}
	return tagged.String(), tagged.Tag(), nil
}
