package registry

import (
	"fmt"
	"strings"

	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// Docs returns the documentation written from the registry, by section name: "gadgets" (the list,
// for the README, linking each gadget's page), "attach" (every hook's attach points), and for each
// gadget "flags:NAME" (its own options), "json:NAME" (its JSON objects) and "attach:NAME" (its
// hooks), for its page
// docs/gadgets/NAME.md. tools/readme writes each between "<!-- registry:NAME -->" and
// "<!-- registry:end -->" wherever it appears; a test fails when a page differs.
func Docs() (map[string]string, error) {
	docs := map[string]string{}
	var list, hooks strings.Builder
	list.WriteString("| gadget | how | what it shows |\n| --- | --- | --- |\n")
	const hooksHead = "| gadget/hook | tried in order | without any |\n| --- | --- | --- |\n"
	hooks.WriteString(hooksHead)
	for _, d := range All {
		name := d.Name
		if d.Group != "" {
			name = d.Group + " " + d.Name
		}
		fmt.Fprintf(&list, "| [%s](docs/gadgets/%s.md) | `%s` | %s |\n", name, d.Page(), d.Command(), d.Summary)

		var fields strings.Builder
		kinds := d.Emitted()
		for _, k := range kinds {
			if d.Mode == gadget.Snapshot {
				fmt.Fprintf(&fields, "\nEach line of `%s -o json` is one object (one %s):\n\n", d.Command(), k.Name)
			} else if len(kinds) > 1 {
				fmt.Fprintf(&fields, "\nThe `%s` object of kind `%s`:\n\n", d.Name, k.Name)
			} else {
				fmt.Fprintf(&fields, "\nThe `%s` object:\n\n", d.Name)
			}
			fields.WriteString("| field | meaning |\n| --- | --- |\n")
			for _, f := range k.Fields {
				fmt.Fprintf(&fields, "| `%s` | %s |\n", f.Name, f.Meaning)
			}
		}
		docs["json:"+d.Name] = strings.TrimPrefix(fields.String(), "\n")
		docs["flags:"+d.Name] = flagsDoc(d)

		spec, err := d.Load()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
		var own strings.Builder
		own.WriteString(hooksHead)
		for _, h := range d.Hooks {
			descs, err := attach.Describe(spec, h)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.Name, err)
			}
			without := h.Without
			if without == "" {
				without = "required: the gadget does not load"
			}
			for i, c := range h.Candidates {
				descs[i] = "`" + descs[i] + "`"
				for _, n := range c {
					if f, ok := d.Needs[n]; ok {
						descs[i] += " (if " + f.Name + ")"
						break
					}
				}
			}
			row := fmt.Sprintf("| %s/%s | %s | %s |\n", d.Name, h.Name, strings.Join(descs, ", then "), without)
			hooks.WriteString(row)
			own.WriteString(row)
		}
		docs["attach:"+d.Name] = own.String()
	}
	docs["gadgets"], docs["attach"] = list.String(), hooks.String()
	return docs, nil
}

// flagsDoc lists a gadget's own options, which its command takes beside the common flags: a
// stream's those of `trace`, a snapshot's -o, --source and the container sources'.
func flagsDoc(d *gadget.Descriptor) string {
	if d.Mode == gadget.Recorder {
		return "`ghostwatch " + d.Name + "` has commands of its own, described above; all their flags: `ghostwatch " +
			d.Name + " COMMAND --help`, and their man pages in [docs/man](../man).\n"
	}
	var b strings.Builder
	if d.Mode == gadget.Snapshot {
		b.WriteString("`" + d.Command() + "` takes `-o table|json`, `--source " + strings.Join(gadget.Sources, "|") +
			"` (the iterators where they load, else what each hook does without them, as the table below says), `--containerd-socket`, `--containerd-namespace`")
	} else {
		b.WriteString("`" + d.Command() + "` takes the [common flags](../commands/trace.md)")
	}
	if len(d.Params) == 0 {
		b.WriteString(" and no others.\n")
		return b.String()
	}
	b.WriteString(" and:\n\n| flag | default | meaning |\n| --- | --- | --- |\n")
	for _, p := range d.Params {
		fmt.Fprintf(&b, "| `--%s` | `%v` | %s |\n", p.Name, p.Default, p.Usage)
	}
	return b.String()
}

// ReplaceDocs returns text with each section of docs that it marks written between its markers,
// and the names of those sections. A marker of a section docs does not have is an error.
func ReplaceDocs(text string, docs map[string]string) (string, []string, error) {
	const begin, end, close = "<!-- registry:", "<!-- registry:end -->", " -->\n"
	var out strings.Builder
	var used []string
	for {
		i := strings.Index(text, begin)
		if i < 0 {
			out.WriteString(text)
			return out.String(), used, nil
		}
		if strings.HasPrefix(text[i:], end) {
			return "", nil, fmt.Errorf("%q without a section marker before it", end)
		}
		k := strings.Index(text[i:], close)
		if k < 0 {
			return "", nil, fmt.Errorf("an unclosed %q marker", begin)
		}
		name := text[i+len(begin) : i+k]
		body, ok := docs[name]
		if !ok {
			return "", nil, fmt.Errorf("no registry section %q", name)
		}
		rest := text[i+k+len(close):]
		j := strings.Index(rest, end)
		if j < 0 {
			return "", nil, fmt.Errorf("no %q after the %q marker", end, name)
		}
		out.WriteString(text[:i+k+len(close)])
		out.WriteString(body)
		out.WriteString(end)
		used = append(used, name)
		text = rest[j+len(end):]
	}
}
