{{ config(alias='stripe_invoices') }}
{{ quarantine_view('stripe', 'invoices') }}
