package registry

import (
	"fmt"
	"strings"

	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// Docs returns the parts of the README written from the registry, by section name: the list of
// gadgets, their JSON objects, and their attach points. tools/readme writes them into README.md
// between "<!-- registry:NAME -->" and "<!-- registry:end -->"; a test fails when they differ.
func Docs() (map[string]string, error) {
	var list, fields, hooks strings.Builder
	list.WriteString("| gadget | how | what it shows |\n| --- | --- | --- |\n")
	hooks.WriteString("| gadget/hook | tried in order | without any |\n| --- | --- | --- |\n")
	for _, d := range All {
		how := "`ghostwatch trace " + d.Name + "`"
		if d.Mode == gadget.Recorder {
			how = "`ghostwatch " + d.Name + " record`"
		}
		fmt.Fprintf(&list, "| %s | %s | %s |\n", d.Name, how, d.Summary)

		for _, k := range append(append([]gadget.Kind{}, d.Kinds...), d.Derived...) {
			if len(d.Kinds)+len(d.Derived) > 1 {
				fmt.Fprintf(&fields, "\nThe `%s` object of kind `%s`:\n\n", d.Name, k.Name)
			} else {
				fmt.Fprintf(&fields, "\nThe `%s` object:\n\n", d.Name)
			}
			fields.WriteString("| field | meaning |\n| --- | --- |\n")
			for _, f := range k.Fields {
				fmt.Fprintf(&fields, "| `%s` | %s |\n", f.Name, f.Meaning)
			}
		}

		spec, err := d.Load()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
		for _, h := range d.Hooks {
			descs, err := attach.Describe(spec, h)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.Name, err)
			}
			without := h.Without
			if without == "" {
				without = "required: the gadget does not load"
			}
			fmt.Fprintf(&hooks, "| %s/%s | `%s` | %s |\n", d.Name, h.Name, strings.Join(descs, "`, then `"), without)
		}
	}
	return map[string]string{"gadgets": list.String(), "json": strings.TrimPrefix(fields.String(), "\n"), "attach": hooks.String()}, nil
}

// ReplaceDocs returns readme with each section of Docs written between its markers, and an error
// naming a section whose markers are missing.
func ReplaceDocs(readme string) (string, error) {
	docs, err := Docs()
	if err != nil {
		return "", err
	}
	for name, text := range docs {
		begin, end := "<!-- registry:"+name+" -->\n", "<!-- registry:end -->"
		i := strings.Index(readme, begin)
		if i < 0 {
			return "", fmt.Errorf("README has no %q marker", strings.TrimSpace(begin))
		}
		j := strings.Index(readme[i:], end)
		if j < 0 {
			return "", fmt.Errorf("README has no %q after %q", end, strings.TrimSpace(begin))
		}
		readme = readme[:i+len(begin)] + text + readme[i+j:]
	}
	return readme, nil
}
