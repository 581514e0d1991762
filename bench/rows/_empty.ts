// Intentionally empty: `deno run` of this file is the floor for starting any Deno child.
