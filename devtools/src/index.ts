export { SERVICE_NAMES, ServiceProcess, startServices, stopServices, serviceEntry, cliEntry, type ServiceName, type StartOptions } from './services.js';
export { DEMO_PAGES, startDemoSite, type DemoSite } from './demo-site.js';
