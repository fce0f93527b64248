package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// sysResource is the one capability this project's VMs lack.
var sysResource = map[string]bool{"CAP_SYS_RESOURCE": true}

func TestMissingCapsAreTheClearBitsOfCapBnd(t *testing.T) {
	for _, tc := range []struct {
		capBnd string
		want   map[string]bool
	}{
		{"000001ffffffffff", map[string]bool{}},
		{"000001fffeffffff", sysResource},
		{"000001fffefffffe", map[string]bool{"CAP_SYS_RESOURCE": true, "CAP_CHOWN": true}},
	} {
		got, err := missingCaps("Name:\tcat\nCapEff:\t0000000000000000\nCapBnd:\t" + tc.capBnd + "\nSeccomp:\t0\n")
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("CapBnd %s: got %v, %v; want %v", tc.capBnd, got, err, tc.want)
		}
	}
	if _, err := missingCaps("Name:\tcat\n"); err == nil {
		t.Error("a status without CapBnd was accepted")
	}
}

// A bundle's config.json as containerd writes it, trimmed: numbers beyond float64's precision and
// characters Go would HTML-escape must survive the rewrite.
const bundleConfig = `{"ociVersion":"1.0.2","process":{"env":["A=<b>&c"],"capabilities":{` +
	`"bounding":["CAP_CHOWN","CAP_SYS_RESOURCE"],"effective":["CAP_SYS_RESOURCE","CAP_KILL"],"ambient":[]},` +
	`"rlimits":[{"type":"RLIMIT_NOFILE","hard":18446744073709551615,"soft":1048576}]},"root":{"path":"rootfs"}}`

func TestOnlyTheMissingCapabilitiesAreDropped(t *testing.T) {
	out, err := stripCaps([]byte(bundleConfig), sysResource, "process", "capabilities")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Process struct {
			Capabilities map[string][]string
			Rlimits      []struct{ Hard json.Number }
		}
		Root struct{ Path string }
	}
	decoder := json.NewDecoder(bytes.NewReader(out))
	decoder.UseNumber()
	if err := decoder.Decode(&got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	wantCaps := map[string][]string{"bounding": {"CAP_CHOWN"}, "effective": {"CAP_KILL"}, "ambient": {}}
	if !reflect.DeepEqual(got.Process.Capabilities, wantCaps) {
		t.Errorf("capabilities %v, want %v", got.Process.Capabilities, wantCaps)
	}
	kept := got.Process.Rlimits[0].Hard == "18446744073709551615" && got.Root.Path == "rootfs"
	if !kept || !bytes.Contains(out, []byte(`"A=<b>&c"`)) {
		t.Errorf("other settings changed: %s", out)
	}
}

func TestADocumentWithNothingToDropIsLeftByteForByte(t *testing.T) {
	for name, tc := range map[string]struct {
		doc     string
		missing map[string]bool
		path    []string
	}{
		"nothing missing":       {bundleConfig, map[string]bool{}, []string{"process", "capabilities"}},
		"no such capability":    {bundleConfig, map[string]bool{"CAP_BPF": true}, []string{"process", "capabilities"}},
		"no process":            {`{"root": {"path": "rootfs"}}`, sysResource, []string{"process", "capabilities"}},
		"null capabilities":     {`{"process": {"capabilities": null}}`, sysResource, []string{"process", "capabilities"}},
		"exec without the list": {`{"args": ["sh"], "capabilities": {}}`, sysResource, []string{"capabilities"}},
	} {
		out, err := stripCaps([]byte(tc.doc), tc.missing, tc.path...)
		if err != nil || string(out) != tc.doc {
			t.Errorf("%s: got %s, %v", name, out, err)
		}
	}
}

func TestCreateRewritesTheBundleAndExecTheProcessFile(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "config.json")
	process := filepath.Join(dir, "process.json")
	write := func() {
		must(t, os.WriteFile(config, []byte(bundleConfig), 0o644))
		must(t, os.WriteFile(process, []byte(`{"args":["sh"],"capabilities":{"bounding":["CAP_SYS_RESOURCE"]}}`), 0o644))
	}
	read := func(file string) string {
		b, err := os.ReadFile(file)
		must(t, err)
		return string(b)
	}
	for _, tc := range []struct {
		args                   []string
		configFixed, procFixed bool
	}{
		{[]string{"--root", "/run/runc", "create", "--bundle", dir, "id"}, true, false},
		{[]string{"create", "--bundle=" + dir, "id"}, true, false},
		{[]string{"run", "-b", dir, "id"}, true, false},
		{[]string{"--log", "x.json", "exec", "--process", process, "--detach", "id"}, false, true},
		{[]string{"exec", "-p=" + process, "id"}, false, true},
		{[]string{"start", "id"}, false, false},
		{[]string{"state", "--bundle", dir, "id"}, false, false},
	} {
		write()
		must(t, fix(tc.args, sysResource))
		if fixed := read(config) != bundleConfig; fixed != tc.configFixed {
			t.Errorf("%v: config.json rewritten: %v, want %v", tc.args, fixed, tc.configFixed)
		}
		if fixed := read(process) == `{"args":["sh"],"capabilities":{"bounding":[]}}`; fixed != tc.procFixed {
			t.Errorf("%v: process JSON fixed: %v, want %v (%s)", tc.args, fixed, tc.procFixed, read(process))
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
