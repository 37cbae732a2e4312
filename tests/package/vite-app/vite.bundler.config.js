// Vite build of the --target bundler package: its entry imports the .wasm as an ES module
// (WebAssembly ESM integration), which Vite does not do by itself; vite-plugin-wasm does. The
// page is the same index.html with main-bundler.js as its script.
import wasm from "vite-plugin-wasm";

export default {
  plugins: [
    wasm(),
    {
      name: "bundler-entry",
      // "pre": before Vite reads the page's scripts.
      transformIndexHtml: {
        order: "pre",
        handler: (html) => html.replace('src="./main.js"', 'src="./main-bundler.js"'),
      },
    },
  ],
};
