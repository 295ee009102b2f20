{{ config(alias='stripe_customers') }}
{{ quarantine_view('stripe', 'customers') }}
