// Built by scripts/setup (npm ci && npm run build) into web/dist, which the backend serves at
// /console/. Nothing is fetched at run time: Vue and Element Plus are bundled.
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

export default defineConfig({
  base: '/console/',
  plugins: [vue()],
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 2000 },
})
