import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run example:build` writes example/dist: static files, served from any folder.
export default defineConfig({
  root: __dirname,
  base: "./",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true },
});
